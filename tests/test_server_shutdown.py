"""Graceful shutdown: requests in flight finish, idle connections close, WebSockets get 1001."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import httpx
import pytest

from anywire.errors import ConnectionClosed
from anywire.server import Server, ServerConfig
from anywire.websocket import accept, connect

from .conftest import timeout
from .server_helpers import (
    Receive,
    Scope,
    Send,
    header,
    raw_client,
    read_until_closed,
    running,
    text_response,
)

pytestmark = pytest.mark.anyio


class _EventHandler(logging.Handler):
    def __init__(self, text: str, event: anyio.Event) -> None:
        super().__init__()
        self.text = text
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


@contextmanager
def logged(text: str, logger: str = "anywire.server") -> Iterator[anyio.Event]:
    """An event set when ``text`` is logged: 'shutting down' marks the start of the shutdown."""
    event = anyio.Event()
    handler = _EventHandler(text, event)
    target = logging.getLogger(logger)
    old_level = target.level
    target.addHandler(handler)
    target.setLevel(logging.INFO)
    try:
        yield event
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)


class App:
    """``/slow`` waits for ``release``; ``/ws`` echoes over a WebSocket; else 'ok'."""

    def __init__(self) -> None:
        self.arrived = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            async with accept(asgi=(scope, receive, send)) as ws:
                async for message in ws:
                    await ws.send(message)
            return
        if scope["path"] == "/slow":
            self.arrived.set()
            await self.release.wait()
        await text_response(send, "ok")


async def test_in_flight_request_finishes_idle_closes_websocket_gets_1001() -> None:
    app = App()
    results: dict[str, object] = {}

    async def slow_request(url: str) -> None:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{url}/slow")
            results["slow"] = (response.text, response.headers.get("connection"))

    with anyio.fail_after(timeout(10)), logged("shutting down") as shutting_down:
        async with running(app, keep_alive_timeout=60, graceful_shutdown=30) as server:
            async with (
                anyio.create_task_group() as tg,
                raw_client(server.port) as idle,
                connect(f"{server.ws_url}/ws") as ws,
            ):
                await idle.request()
                assert (await idle.response())[0].status_code == 200  # now idle, kept alive
                await ws.send("ping")
                assert await ws.receive() == "ping"
                tg.start_soon(slow_request, server.url)
                await app.arrived.wait()

                server.stop()
                await shutting_down.wait()
                assert await read_until_closed(idle.stream) == b""  # closed at once
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.receive()
                assert closed.value.code == 1001
                app.release.set()  # the request in flight still completes
            await server.wait_stopped()
    assert results["slow"] == ("ok", "close")


async def test_response_started_before_shutdown_completes_then_the_connection_closes() -> None:
    proceed = anyio.Event()
    started = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one,", "more_body": True})
        started.set()
        await proceed.wait()
        await send({"type": "http.response.body", "body": b"two"})

    with anyio.fail_after(timeout(10)), logged("shutting down") as shutting_down:
        async with running(app) as server, raw_client(server.port) as client:
            await client.request()
            await started.wait()
            server.stop()
            await shutting_down.wait()
            proceed.set()
            response, chunks = await client.response()
            assert header(response, b"transfer-encoding") == b"chunked"
            assert b"".join(chunks) == b"one,two"
            assert await read_until_closed(client.stream) == b""
            await server.wait_stopped()


async def test_request_that_overruns_the_grace_period_is_cancelled() -> None:
    app = App()
    with anyio.fail_after(timeout(10)):
        async with running(app, graceful_shutdown=0.2) as server, raw_client(server.port) as c:
            await c.request(target="/slow")
            await app.arrived.wait()
            server.stop()
            await server.wait_stopped()  # without app.release: the grace period ran out
            assert await read_until_closed(c.stream) == b""


async def test_force_exit_cancels_at_once() -> None:
    app = App()
    server = Server(app, ServerConfig(port=0, graceful_shutdown=60, lifespan="off"))
    with anyio.fail_after(timeout(10)):
        async with anyio.create_task_group() as tg:
            info = await tg.start(server.run)
            async with raw_client(info.port) as client:
                await client.request(target="/slow")
                await app.arrived.wait()
                tg.cancel_scope.cancel()  # graceful: would wait up to 60 s
                server.force_exit()
            assert not app.release.is_set()


async def test_no_new_connections_after_shutdown() -> None:
    with anyio.fail_after(timeout(10)):
        async with running(App()) as server:
            port = server.port
            server.stop()
            await server.wait_stopped()
            with pytest.raises(OSError, match=r"connection attempts failed|refused"):
                await anyio.connect_tcp("127.0.0.1", port)


async def test_pipelined_request_after_shutdown_is_not_served() -> None:
    app = App()
    with anyio.fail_after(timeout(10)), logged("shutting down") as shutting_down:
        async with running(app) as server, raw_client(server.port) as client:
            await client.request(target="/slow")
            await app.arrived.wait()
            server.stop()
            await shutting_down.wait()
            await client.stream.send(b"GET /second HTTP/1.1\r\nhost: x\r\n\r\n")
            app.release.set()
            response, _ = await client.response()
            assert header(response, b"connection") == b"close"
            assert await read_until_closed(client.stream) == b""  # /second is not answered


@pytest.mark.parametrize("mode", ["messages", "pull"])
async def test_websocket_gets_1001_in_every_mode(mode: str) -> None:
    app_saw: list[object] = []
    ready = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if mode == "messages":
            await receive()
            await send({"type": "websocket.accept"})
            ready.set()
            app_saw.append(await receive())
            return
        ws = await accept(asgi=(scope, receive, send))  # the driver in pull mode
        ready.set()
        try:
            await ws.receive()
        except ConnectionClosed as exc:
            app_saw.append(exc.code)

    with anyio.fail_after(timeout(10)):
        async with running(app) as server, connect(server.ws_url) as ws:
            await ready.wait()
            server.stop()
            with pytest.raises(ConnectionClosed) as closed:
                await ws.receive()
            await server.wait_stopped()
    assert closed.value.code == 1001
    expected = {"type": "websocket.disconnect", "code": 1001, "reason": "server shutting down"}
    assert app_saw == [expected if mode == "messages" else 1001]
