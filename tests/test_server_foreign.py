"""Our ``anywire.websocket`` server API hosted by foreign ASGI servers (uvicorn, hypercorn).

There the host does the framing, so ``accept(asgi=)`` returns the ASGI-message
adapter (``ASGIWebSocket``). The servers run in-process on a listening socket
bound here first (port 0), handed to them as a socket (uvicorn) or an ``fd://``
bind (hypercorn). uvicorn runs on asyncio only.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from anywire.errors import ConnectionClosed
from anywire.websocket import ASGIWebSocket, accept, connect

from .conftest import timeout
from .server_helpers import Receive, Scope, Send

pytestmark = pytest.mark.anyio

Host = Callable[[Any], Any]
seen_types: list[type] = []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    async with accept(
        asgi=(scope, receive, send), subprotocols=["chat"], max_message_size=100
    ) as ws:
        seen_types.append(type(ws))
        async for message in ws:
            if message == "close":
                await ws.close(4001, "bye")
                return
            await ws.send(message)


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@asynccontextmanager
async def uvicorn_host(ws_impl: str) -> AsyncIterator[int]:
    import uvicorn

    sock = listening_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", ws=ws_impl, log_level="warning")
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        yield port  # connections wait in the backlog until uvicorn accepts them
        server.should_exit = True
    sock.close()


@asynccontextmanager
async def hypercorn_host(backend: str) -> AsyncIterator[int]:
    from hypercorn.config import Config

    if backend == "trio":
        from hypercorn.trio import serve
    else:
        from hypercorn.asyncio import serve  # type: ignore[assignment]
    sock = listening_socket()
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the socket from here
    config.graceful_timeout = 1
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_serve_hypercorn, serve, config, stop.wait)
        yield port
        stop.set()


async def _serve_hypercorn(
    serve: Callable[..., Awaitable[None]], config: Any, trigger: Callable[[], Awaitable[None]]
) -> None:
    await serve(app, config, shutdown_trigger=trigger)  # type: ignore[arg-type]


async def exercise(port: int) -> None:
    url = f"ws://127.0.0.1:{port}/ws"
    with anyio.fail_after(timeout(10)):
        async with connect(url, subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"
            await ws.send("hello")
            assert await ws.receive() == "hello"
            await ws.send(b"\x01\x02")
            assert await ws.receive() == b"\x01\x02"
            await ws.send("close")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.receive()
        assert (closed.value.code, closed.value.message) == (4001, "bye")
        async with connect(url, subprotocols=["chat"]) as ws:
            await ws.send("x" * 101)  # over max_message_size: checked on delivery
            with pytest.raises(ConnectionClosed) as too_big:
                await ws.receive()
        assert too_big.value.code == 1009
    assert set(seen_types) == {ASGIWebSocket}


@pytest.mark.parametrize("ws_impl", ["wsproto", "websockets-sansio"])
async def test_hosted_by_uvicorn(anyio_backend_name: str, ws_impl: str) -> None:
    if anyio_backend_name != "asyncio":
        pytest.skip("uvicorn runs on asyncio only")
    seen_types.clear()
    async with uvicorn_host(ws_impl) as port:
        await exercise(port)


async def test_hosted_by_hypercorn(anyio_backend_name: str) -> None:
    seen_types.clear()
    async with hypercorn_host(anyio_backend_name) as port:
        await exercise(port)
