"""A Starlette application (routes, streaming, WebSocket, lifespan) served by the runner."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import h11
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from anywire.errors import ConnectionClosed
from anywire.websocket import connect

from .conftest import timeout
from .server_helpers import Receive, Scope, Send, raw_client, running

pytestmark = pytest.mark.anyio


def make_app(events: list[str]) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
        events.append("startup")
        yield {"greeting": "hello"}
        events.append("shutdown")

    async def home(request: Request) -> Response:
        return JSONResponse(
            {"greeting": request.state.greeting, "client": request.client.host}  # type: ignore[union-attr]
        )

    async def item(request: Request) -> Response:
        return PlainTextResponse(f"item {request.path_params['item_id']}")

    async def echo(request: Request) -> Response:
        body = await request.body()
        return Response(body[::-1], media_type="application/octet-stream")

    async def stream(request: Request) -> Response:
        async def numbers() -> AsyncIterator[bytes]:
            for i in range(5):
                yield f"{i}\n".encode()

        return StreamingResponse(numbers(), media_type="text/plain")

    async def chat(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="chat")
        try:
            while True:
                text = await websocket.receive_text()
                if text == "bye":
                    await websocket.close(code=4000, reason="see you")
                    return
                await websocket.send_text(text.upper())
        except WebSocketDisconnect:
            events.append("ws disconnect")

    routes = [
        Route("/", home),
        Route("/items/{item_id:int}", item),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
        WebSocketRoute("/ws", chat),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def test_starlette_http_routes_streaming_and_lifespan() -> None:
    events: list[str] = []
    with anyio.fail_after(timeout(10)):
        async with running(make_app(events), lifespan="on") as server:
            async with httpx.AsyncClient(base_url=server.url) as client:
                home = await client.get("/")
                item = await client.get("/items/42")
                missing = await client.get("/nowhere")
                echoed = await client.post("/echo", content=b"abc" * 1000)
                async with client.stream("GET", "/stream") as response:
                    lines = [line async for line in response.aiter_lines()]
                    chunked = response.headers.get("transfer-encoding")
            server.stop()
            await server.wait_stopped()
    assert home.json() == {"greeting": "hello", "client": "127.0.0.1"}
    assert item.text == "item 42"
    assert missing.status_code == 404
    assert echoed.content == (b"abc" * 1000)[::-1]
    assert lines == ["0", "1", "2", "3", "4"]
    assert chunked == "chunked"
    assert events == ["startup", "shutdown"]


async def test_starlette_websocket_route() -> None:
    events: list[str] = []
    with anyio.fail_after(timeout(10)):
        async with running(make_app(events)) as server:
            async with connect(f"{server.ws_url}/ws", subprotocols=["chat"]) as ws:
                assert ws.subprotocol == "chat"
                await ws.send("hello")
                assert await ws.receive() == "HELLO"
                await ws.send("bye")
                with pytest.raises(ConnectionClosed) as info:
                    await ws.receive()
            assert info.value.code == 4000
            assert info.value.message == "see you"
            async with connect(f"{server.ws_url}/ws", subprotocols=["chat"]) as ws:
                await ws.send("x")
                assert await ws.receive() == "X"
            server.stop()
            await server.wait_stopped()
    assert events.count("ws disconnect") == 1


class Ticks:
    """An endless body iterator (a class: an abandoned async generator would warn)."""

    def __init__(self) -> None:
        self.produced = 0

    def __aiter__(self) -> Ticks:
        return self

    async def __anext__(self) -> bytes:
        self.produced += 1
        await anyio.sleep(0.01)
        return b"tick\n"


async def test_starlette_streaming_response_stops_when_the_client_leaves() -> None:
    ticks = Ticks()
    ended = anyio.Event()

    async def forever(request: Request) -> Response:
        return StreamingResponse(ticks)

    starlette = Starlette(routes=[Route("/", forever)])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await starlette(scope, receive, send)
        finally:
            ended.set()

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            async with raw_client(server.port) as client:
                await client.request()
                assert isinstance(await client.next_event(), h11.Response)
                assert isinstance(await client.next_event(), h11.Data)
            await ended.wait()  # a send after the disconnect raised: the app stopped
    assert ticks.produced >= 1
