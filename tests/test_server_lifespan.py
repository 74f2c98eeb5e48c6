"""The ASGI lifespan protocol under the runner."""

from __future__ import annotations

import logging

import anyio
import httpx
import pytest

from anywire.server import LifespanError, Server, ServerConfig, serve_app

from .conftest import timeout
from .server_helpers import Receive, Scope, Send, hello_app, running, text_response

pytestmark = pytest.mark.anyio


class LifespanApp:
    """Records the order of lifespan events and requests; fails where told to."""

    def __init__(self, *, fail: str | None = None, raise_in: str | None = None) -> None:
        self.events: list[str] = []
        self.fail = fail
        self.raise_in = raise_in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return
        self.events.append(f"request {scope['state'].get('db')}")
        keys = repr(sorted(scope["state"]))
        scope["state"]["leak"] = True  # a copy: the next request must not see it
        await text_response(send, keys)

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        for phase in ("startup", "shutdown"):
            message = await receive()
            assert message["type"] == f"lifespan.{phase}"
            self.events.append(phase)
            if self.raise_in == phase:
                raise RuntimeError(f"{phase} exploded")
            if self.fail == phase:
                await send({"type": f"lifespan.{phase}.failed", "message": f"no {phase}"})
                return
            if phase == "startup":
                scope["state"]["db"] = "ready"
            await send({"type": f"lifespan.{phase}.complete"})


async def test_startup_state_and_shutdown_in_order() -> None:
    app = LifespanApp()
    with anyio.fail_after(timeout(10)):
        async with running(app, lifespan="auto") as server, httpx.AsyncClient() as client:
            assert app.events == ["startup"]
            first = await client.get(server.url)
            second = await client.get(server.url)
            server.stop()
            await server.wait_stopped()
    assert first.text == second.text == "['db']"
    assert app.events == ["startup", "request ready", "request ready", "shutdown"]


async def test_startup_failed_message_raises_lifespan_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = LifespanApp(fail="startup")
    with anyio.fail_after(timeout(10)), pytest.raises(LifespanError) as info:
        await serve_app(app, "127.0.0.1", 0)
    assert info.value.phase == "startup"
    assert "no startup" in str(info.value)
    assert "Application startup failed" in caplog.text


async def test_startup_exception_raises_lifespan_error_with_the_cause() -> None:
    app = LifespanApp(raise_in="startup")
    with anyio.fail_after(timeout(10)), pytest.raises(LifespanError) as info:
        await serve_app(app, "127.0.0.1", 0)
    assert isinstance(info.value.__cause__, RuntimeError)


async def test_startup_timeout_raises_lifespan_error() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await anyio.sleep_forever()

    with anyio.fail_after(timeout(10)), pytest.raises(LifespanError, match="within"):
        await serve_app(app, "127.0.0.1", 0, lifespan_timeout=0.2)


async def test_app_without_lifespan_support_is_served(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="anywire.server")
    with anyio.fail_after(timeout(10)):
        async with running(hello_app, lifespan="auto") as server, httpx.AsyncClient() as client:
            assert (await client.get(server.url)).text == "hello"
    assert "does not support ASGI lifespan" in caplog.text


async def test_lifespan_on_makes_an_unsupporting_app_fatal() -> None:
    with anyio.fail_after(timeout(10)), pytest.raises(LifespanError):
        await serve_app(hello_app, "127.0.0.1", 0, lifespan="on")


async def test_lifespan_off_never_calls_the_app_with_lifespan() -> None:
    app = LifespanApp()
    with anyio.fail_after(timeout(10)):
        async with running(app, lifespan="off") as server, httpx.AsyncClient() as client:
            assert (await client.get(server.url)).text == "[]"
    assert app.events == ["request None"]


@pytest.mark.parametrize("how", ["fail", "raise"])
async def test_shutdown_failure_is_logged_and_recorded(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = LifespanApp(fail="shutdown") if how == "fail" else LifespanApp(raise_in="shutdown")
    server = Server(app, ServerConfig(port=0))
    with anyio.fail_after(timeout(10)):
        async with anyio.create_task_group() as tg:
            await tg.start(server.run)
            tg.cancel_scope.cancel()
    assert server.lifespan_shutdown_failed
    assert "Application shutdown" in caplog.text
    assert app.events == ["startup", "shutdown"]


@pytest.mark.parametrize("when", ["before", "during"])
async def test_force_exit_cuts_a_hanging_lifespan_shutdown(when: str) -> None:
    shutdown_received = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        shutdown_received.set()
        await anyio.sleep_forever()  # never completes its shutdown

    server = Server(app, ServerConfig(port=0, lifespan_timeout=60))
    with anyio.fail_after(timeout(10)):
        async with anyio.create_task_group() as tg:
            await tg.start(server.run)
            tg.cancel_scope.cancel()
            if when == "during":
                with anyio.CancelScope(shield=True):
                    await shutdown_received.wait()
            server.force_exit()
    assert not server.lifespan_shutdown_failed
