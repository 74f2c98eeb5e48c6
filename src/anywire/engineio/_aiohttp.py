"""``AsyncServer.attach(app)`` for an aiohttp ``web.Application`` (asyncio only).

aiohttp is imported only when an aiohttp app is attached. The Engine.IO path
gets one route whose handler bridges the aiohttp request to the server's ASGI
app: an HTTP request becomes one ASGI ``http`` exchange answered with a
``web.Response``; a WebSocket upgrade becomes an ASGI ``websocket`` exchange
over aiohttp's ``WebSocketResponse``. The server is entered (``async with
server:``) in the app's ``cleanup_ctx``, so its task group lives as long as
the app: call the runner's ``setup()`` and ``cleanup()`` from one task, as
``web.run_app`` does. ``on_shutdown`` closes the sessions, so that aiohttp
does not wait for parked polls and open WebSockets.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from anywire._asgi import ASGIApp

if TYPE_CHECKING:
    from anywire.engineio._server import AsyncServer

__all__ = ["attach_aiohttp", "is_aiohttp_app"]

ASGI = ASGIApp
_CHUNK = 64 * 1024


def is_aiohttp_app(app: Any) -> bool:
    """Whether ``app`` is an aiohttp ``web.Application`` (without importing aiohttp)."""
    web = sys.modules.get("aiohttp.web")
    return web is not None and isinstance(app, web.Application)


def attach_aiohttp(server: AsyncServer, app: Any, engineio_path: str) -> None:
    """Route ``/engineio_path/`` of ``app`` to ``server`` and run the server with the app."""
    from anywire.engineio._asgi_app import ASGIApp

    asgi = ASGIApp(server, engineio_path="")
    bridge = _Bridge(asgi, server.max_http_buffer_size + 16)
    app.router.add_route("*", "/" + engineio_path.strip("/") + "/", bridge.handle)

    async def run_server(app: Any) -> AsyncIterator[None]:
        async with server:
            yield

    async def close_sessions(app: Any) -> None:
        # before aiohttp waits for its handlers: parked polls and WebSockets end now
        await server.shutdown()

    app.cleanup_ctx.append(run_server)
    app.on_shutdown.append(close_sessions)


class _Bridge:
    """aiohttp handler → ASGI app."""

    def __init__(self, asgi: ASGI, max_msg_size: int) -> None:
        self.asgi = asgi
        self.max_msg_size = max_msg_size
        self.web: Any = importlib.import_module("aiohttp.web")

    async def handle(self, request: Any) -> Any:
        upgrade = request.headers.get("Upgrade", "").lower()
        if upgrade == "websocket" and request.method == "GET":
            return await self._websocket(request)
        return await self._http(request)

    async def _http(self, request: Any) -> Any:
        exchange = _HttpExchange(request)
        await self.asgi(_scope(request, "http"), exchange.receive, exchange.send)
        headers = [(k, v) for k, v in exchange.headers if k.lower() != "content-length"]
        return self.web.Response(
            status=exchange.status, body=b"".join(exchange.body), headers=_multidict(headers)
        )

    async def _websocket(self, request: Any) -> Any:
        exchange = _WebSocketExchange(self.web, request, self.max_msg_size)
        scope = _scope(request, "websocket")
        protocols = request.headers.get("Sec-WebSocket-Protocol", "")
        scope["subprotocols"] = [p.strip() for p in protocols.split(",") if p.strip()]
        await self.asgi(scope, exchange.receive, exchange.send)
        if exchange.ws is None:  # refused before the handshake: 403, as ASGI servers do
            refusal = self.web.Response(status=403, text="Forbidden")
            refusal.force_close()
            return refusal
        if not exchange.ws.closed:
            await exchange.ws.close()
        return exchange.ws


def _scope(request: Any, kind: str) -> dict[str, Any]:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
    scheme = request.scheme if kind == "http" else {"https": "wss"}.get(request.scheme, "ws")
    return {
        "type": kind,
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": scheme,
        "path": request.path,
        "raw_path": request.raw_path.split("?")[0].encode("latin-1"),
        "query_string": request.query_string.encode("latin-1"),
        "root_path": "",
        "headers": [(k.lower(), v) for k, v in request.raw_headers],
        "client": client,
        "server": None,
    }


def _multidict(headers: list[tuple[str, str]]) -> Any:
    multidict: Any = importlib.import_module("multidict")
    return multidict.CIMultiDict(headers)


class _HttpExchange:
    """One ASGI ``http`` exchange over an aiohttp request; the response is collected."""

    def __init__(self, request: Any) -> None:
        self.request = request
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self._body_done = False

    async def receive(self) -> dict[str, Any]:
        if self._body_done:
            # aiohttp reports no disconnect to a running handler: wait to be cancelled.
            await anyio.sleep_forever()
        chunk: bytes = await self.request.content.read(_CHUNK)
        more = bool(chunk) and not self.request.content.at_eof()
        self._body_done = not more
        return {"type": "http.request", "body": chunk, "more_body": more}

    async def send(self, message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.headers = [
                (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                for k, v in message.get("headers", [])
            ]
        elif message["type"] == "http.response.body":
            self.body.append(bytes(message.get("body", b"")))


class _WebSocketExchange:
    """One ASGI ``websocket`` exchange over aiohttp's ``WebSocketResponse``."""

    def __init__(self, web: Any, request: Any, max_msg_size: int) -> None:
        self.web = web
        self.request = request
        self.max_msg_size = max_msg_size
        self.ws: Any = None
        self._connected = False

    async def receive(self) -> dict[str, Any]:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        if self.ws is None:
            raise RuntimeError("receive() before websocket.accept")
        msg = await self.ws.receive()
        kind = self.web.WSMsgType
        if msg.type is kind.TEXT:
            return {"type": "websocket.receive", "text": msg.data}
        if msg.type is kind.BINARY:
            return {"type": "websocket.receive", "bytes": msg.data}
        return {"type": "websocket.disconnect", "code": self.ws.close_code or 1005}

    async def send(self, message: Mapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            await self._accept(message)
        elif kind == "websocket.send" and self.ws is not None:
            if message.get("text") is not None:
                await self.ws.send_str(message["text"])
            else:
                await self.ws.send_bytes(bytes(message.get("bytes") or b""))
        elif kind == "websocket.close" and self.ws is not None:
            reason = str(message.get("reason") or "").encode()
            await self.ws.close(code=int(message.get("code", 1000)), message=reason)
        elif kind == "websocket.send":
            raise RuntimeError("websocket.send before websocket.accept")

    async def _accept(self, message: Mapping[str, Any]) -> None:
        subprotocol = message.get("subprotocol")
        ws = self.web.WebSocketResponse(
            protocols=(subprotocol,) if subprotocol else (),
            max_msg_size=self.max_msg_size,
            autoping=True,
        )
        for name, value in message.get("headers") or []:
            ws.headers.add(bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
        await ws.prepare(self.request)
        self.ws = ws
