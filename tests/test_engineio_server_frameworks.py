"""The Engine.IO server inside other frameworks: attach() to aiohttp and Starlette,
ASGIApp forwarding the lifespan to ``other_asgi_app``, the FastAPI example.

aiohttp runs on asyncio only; everything else runs on both backends.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import anywire.engineio as engineio
from anywire.engineio import ASGIApp, AsyncServer
from anywire.errors import HandshakeError
from anywire.websocket import connect as ws_connect
from tests.conftest import timeout
from tests.server_helpers import running
from tests.test_engineio_server import echo_server

pytestmark = pytest.mark.anyio

TRANSPORTS = [None, "polling", "websocket"]


async def echo_round_trip(url: str, transports: str | None, path: str = "engine.io") -> None:
    async with engineio.connect(url, transports=transports, engineio_path=path) as client:
        for data in ["hello", b"\x00\x01"]:
            await client.send(data)
            with anyio.fail_after(timeout(5)):
                assert await client.receive() == data


# -- attach() -----------------------------------------------------------------------------


@asynccontextmanager
async def aiohttp_serving(app: Any) -> AsyncIterator[str]:
    """Serve an aiohttp app on a free port; torn down (cleanup_ctx included) at the end."""
    from aiohttp import web

    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:  # not in a cancel scope of its own: the server's task group must exit as it entered
        await runner.cleanup()


async def test_attach_to_aiohttp(anyio_backend_name: str) -> None:
    if anyio_backend_name != "asyncio":
        pytest.skip("aiohttp runs on asyncio only")
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello from aiohttp")

    eio, rec = echo_server(async_mode="aiohttp")  # the seed's form
    app = web.Application()
    app.router.add_get("/hello", hello)
    eio.attach(app)
    assert eio._tg is None
    async with aiohttp_serving(app) as url:
        assert eio._tg is not None  # cleanup_ctx entered the server
        for transports in TRANSPORTS:
            await echo_round_trip(url, transports)
        async with httpx.AsyncClient(timeout=timeout(5)) as http:
            assert (await http.get(url + "/hello")).text == "hello from aiohttp"
            r = await http.get(url + "/engine.io/", params={"EIO": "3", "transport": "polling"})
            assert (r.status_code, r.json()["code"]) == (400, 5)
        # an engine.io client's direct WebSocket, refused by origin: no handshake
        ws_url = url.replace("http", "ws", 1) + "/engine.io/?EIO=4&transport=websocket"
        with pytest.raises(HandshakeError):
            async with ws_connect(ws_url, headers={"Origin": "http://elsewhere.example"}):
                pass
    assert eio._tg is None  # and left it at cleanup
    assert [reason for _, reason in rec.disconnects] == ["client disconnect"] * 3


async def test_attach_to_aiohttp_custom_path_and_server_disconnect(
    anyio_backend_name: str,
) -> None:
    if anyio_backend_name != "asyncio":
        pytest.skip("aiohttp runs on asyncio only")
    from aiohttp import web

    eio, rec = echo_server()
    app = web.Application()
    eio.attach(app, engineio_path="/rt/")
    async with aiohttp_serving(app) as url:
        async with engineio.connect(url, engineio_path="rt", transports="polling") as client:
            await client.send("x" * 5000)  # a compressed polling response
            with anyio.fail_after(timeout(5)):
                assert await client.receive() == "x" * 5000
            assert client.sid is not None
            await eio.disconnect(client.sid)
            with anyio.fail_after(timeout(5)):
                await client.wait()
    assert [reason for _, reason in rec.disconnects] == ["server disconnect"]


async def test_aiohttp_cleanup_disconnects_connected_clients(anyio_backend_name: str) -> None:
    """A parked poll and a WebSocket do not hold aiohttp's shutdown back."""
    if anyio_backend_name != "asyncio":
        pytest.skip("aiohttp runs on asyncio only")
    from aiohttp import web

    eio, rec = echo_server(ping_interval=60)
    app = web.Application()
    eio.attach(app)
    connected = [anyio.Event(), anyio.Event()]
    async with anyio.create_task_group() as tg:  # the clients outlive the server
        async with aiohttp_serving(app) as url:

            async def client(transports: str, connected: anyio.Event) -> None:
                async with engineio.connect(url, transports=transports) as client:
                    connected.set()
                    await client.wait()

            tg.start_soon(client, "polling", connected[0])
            tg.start_soon(client, "websocket", connected[1])
            with anyio.fail_after(timeout(5)):
                for event in connected:
                    await event.wait()
            started = anyio.current_time()
        assert anyio.current_time() - started < timeout(3)
    assert [reason for _, reason in rec.disconnects] == ["server disconnect"] * 2


async def test_attach_to_starlette() -> None:
    eio, rec = echo_server()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with eio:
            yield

    app = Starlette(lifespan=lifespan)
    eio.attach(app, engineio_path="socket")
    async with running(app, lifespan="on") as server:
        for transports in TRANSPORTS:
            await echo_round_trip(server.url, transports, path="socket")
    assert len(rec.disconnects) == 3


class SanicLike:
    pass


class TornadoLike:
    pass


SanicLike.__module__ = "sanic.app"
TornadoLike.__module__ = "tornado.web"


@pytest.mark.parametrize(
    ("app", "hint"),
    [
        (SanicLike(), "other_asgi_app=sanic_app"),
        (TornadoLike(), "Tornado is not ASGI"),
        (object(), "ASGIApp(server, other_asgi_app=app)"),
    ],
)
def test_attach_to_anything_else_says_what_to_do(app: object, hint: str) -> None:
    with pytest.raises(TypeError, match=r"aiohttp web\.Application or an app with mount") as info:
        AsyncServer().attach(app)
    assert hint in str(info.value)


# -- ASGIApp forwards the lifespan ---------------------------------------------------------


def starlette_app(log: list[str], fail: str | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if fail == "startup":
            raise RuntimeError("other startup boom")
        log.append("other start")
        yield
        log.append("other stop")
        if fail == "shutdown":
            raise RuntimeError("other shutdown boom")

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/hello", hello)], lifespan=lifespan)


async def test_lifespan_reaches_other_asgi_app_and_starts_the_server() -> None:
    log: list[str] = []
    eio, _ = echo_server()
    app = ASGIApp(
        eio,
        other_asgi_app=starlette_app(log),
        on_startup=lambda: log.append("start"),
        on_shutdown=lambda: log.append("stop"),
    )
    async with running(app, lifespan="on") as server:
        assert log == ["other start", "start"]
        async with httpx.AsyncClient(timeout=timeout(5)) as http:
            assert (await http.get(server.url.rstrip("/") + "/hello")).text == "hello"
        await echo_round_trip(server.url, None)
    assert log == ["other start", "start", "stop", "other stop"]
    assert eio._tg is None


Message = dict[str, Any]


async def lifespan_replies(app: Callable[..., Awaitable[None]]) -> list[Message]:
    """Drive ``app``'s lifespan in-process as a server would; the app's replies."""
    to_app, inbox = anyio.create_memory_object_stream[Message](2)
    outbox, from_app = anyio.create_memory_object_stream[Message](2)
    replies: list[Message] = []
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    with anyio.fail_after(timeout(5)):
        async with anyio.create_task_group() as tg, to_app, inbox, outbox, from_app:
            tg.start_soon(app, scope, inbox.receive, outbox.send)
            await to_app.send({"type": "lifespan.startup"})
            replies.append(await from_app.receive())
            if replies[0]["type"] == "lifespan.startup.complete":
                await to_app.send({"type": "lifespan.shutdown"})
                replies.append(await from_app.receive())
    return replies


@pytest.mark.parametrize(
    ("fail", "expected", "log_after"),
    [
        ("startup", ["lifespan.startup.failed"], []),
        (
            "shutdown",
            ["lifespan.startup.complete", "lifespan.shutdown.failed"],
            ["other start", "other stop"],
        ),
    ],
)
async def test_lifespan_failures_of_other_asgi_app_are_reported(
    fail: str, expected: list[str], log_after: list[str]
) -> None:
    log: list[str] = []
    eio, _ = echo_server()
    replies = await lifespan_replies(ASGIApp(eio, other_asgi_app=starlette_app(log, fail)))
    assert [r["type"] for r in replies] == expected
    assert f"other {fail} boom" in replies[-1]["message"]
    assert log == log_after
    assert eio._tg is None


async def test_failing_on_startup_still_shuts_the_other_app_down() -> None:
    log: list[str] = []

    def on_startup() -> None:
        raise ValueError("on_startup boom")

    eio, _ = echo_server()
    app = ASGIApp(eio, other_asgi_app=starlette_app(log), on_startup=on_startup)
    replies = await lifespan_replies(app)
    assert replies == [{"type": "lifespan.startup.failed", "message": "on_startup boom"}]
    assert log == ["other start", "other stop"]


async def test_other_asgi_app_without_lifespan_support(caplog: pytest.LogCaptureFixture) -> None:
    async def http_only(scope: Message, receive: Any, send: Any) -> None:
        assert scope["type"] == "http", "no lifespan here"

    caplog.set_level(logging.INFO, logger="anywire.engineio.server")
    started: list[bool] = []
    eio, _ = echo_server()
    app = ASGIApp(
        eio, other_asgi_app=http_only, on_startup=lambda: started.append(eio._tg is not None)
    )
    replies = await lifespan_replies(app)
    assert [r["type"] for r in replies] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert started == [True]
    assert "other_asgi_app's lifespan raised" in caplog.text


# -- the FastAPI example ------------------------------------------------------------------


def load_example(name: str) -> ModuleType:
    path = Path(__file__).parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_fastapi_example(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example("engineio_fastapi")
    async with running(example.app, lifespan="on") as server:
        for transports in TRANSPORTS:
            await echo_round_trip(server.url, transports)
        async with httpx.AsyncClient(timeout=timeout(5)) as http:
            assert (await http.get(server.url.rstrip("/") + "/hello")).json() == {"hello": "world"}
            assert (await http.get(server.url.rstrip("/") + "/nope")).status_code == 404
    out = capsys.readouterr().out.splitlines()
    assert len([line for line in out if line.startswith("connect ")]) == 3
    assert len([line for line in out if line.startswith("disconnect ")]) == 3


async def test_fastapi_without_the_lifespan_says_the_server_is_not_running() -> None:
    from fastapi import FastAPI

    eio = AsyncServer()
    app = FastAPI()  # nobody enters the server
    app.mount("/", ASGIApp(eio))
    async with running(app, lifespan="on") as server:
        async with httpx.AsyncClient(timeout=timeout(5)) as http:
            r = await http.get(server.url.rstrip("/") + "/engine.io/?EIO=4&transport=polling")
        assert r.status_code == 500
        assert "not running" in r.text
        assert "async with server" in r.text
        ws_url = server.ws_url.rstrip("/") + "/engine.io/?EIO=4&transport=websocket"
        with pytest.raises(HandshakeError):
            async with ws_connect(ws_url):
                pass
