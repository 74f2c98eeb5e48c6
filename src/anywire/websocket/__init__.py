"""WebSocket client and server on wsproto, for asyncio or trio.

Client::

    async with anywire.websocket.connect("ws://127.0.0.1:8000/ws") as ws:
        await ws.send("hello")
        print(await ws.receive())

Server::

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    await anywire.websocket.serve_websocket(echo, "127.0.0.1", 8000)

simple-websocket's names (``AioClient.connect``, ``AioServer.accept``,
``ConnectionClosed``, ``ConnectionError``) work as documented there.
"""

from __future__ import annotations

from anywire.errors import ConcurrencyError as ConcurrencyError
from anywire.errors import ConnectFailed as ConnectFailed
from anywire.errors import ConnectionClosed as ConnectionClosed
from anywire.errors import ConnectionClosedError as ConnectionClosedError
from anywire.errors import ConnectionClosedOK as ConnectionClosedOK
from anywire.errors import HandshakeError as HandshakeError
from anywire.errors import HandshakeRejected as HandshakeRejected
from anywire.errors import InvalidHandshake as InvalidHandshake
from anywire.websocket._asgi import ASGIWebSocket as ASGIWebSocket
from anywire.websocket._client import AioClient as AioClient
from anywire.websocket._client import Connect as Connect
from anywire.websocket._client import connect as connect
from anywire.websocket._connection import WebSocket as WebSocket
from anywire.websocket._connection import WebSocketOptions as WebSocketOptions
from anywire.websocket._server import Accept as Accept
from anywire.websocket._server import AioServer as AioServer
from anywire.websocket._server import HandshakeRequest as HandshakeRequest
from anywire.websocket._server import accept as accept
from anywire.websocket._server import serve_websocket as serve_websocket

#: simple-websocket's name for a failed connection attempt.
ConnectionError = HandshakeError

__all__ = [
    "ASGIWebSocket",
    "Accept",
    "AioClient",
    "AioServer",
    "ConcurrencyError",
    "Connect",
    "ConnectFailed",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ConnectionError",
    "HandshakeError",
    "HandshakeRejected",
    "HandshakeRequest",
    "InvalidHandshake",
    "WebSocket",
    "WebSocketOptions",
    "accept",
    "connect",
    "serve_websocket",
]
