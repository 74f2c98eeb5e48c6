"""Helpers for WebSocket tests: servers owned by a task group, raw peers."""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import SocketStream
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import AcceptConnection, Request
from wsproto.extensions import Extension
from wsproto.handshake import H11Handshake

from anywire.websocket import WebSocket, serve_websocket


@asynccontextmanager
async def running_server(
    handler: Callable[[WebSocket], Awaitable[None]], **options: Any
) -> AsyncIterator[str]:
    """Serve ``handler`` on a free loopback port; yield ``ws://127.0.0.1:PORT``."""
    async with anyio.create_task_group() as tg:
        info = await tg.start(
            lambda task_status: serve_websocket(
                handler, "127.0.0.1", 0, task_status=task_status, **options
            )
        )
        yield f"ws://127.0.0.1:{info.port}"
        tg.cancel_scope.cancel()


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def upgrade_request(path: str = "/", **headers: str) -> bytes:
    fields = {
        "Host": "127.0.0.1",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    fields.update({k.replace("_", "-"): v for k, v in headers.items()})
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_head(stream: SocketStream) -> tuple[bytes, bytes]:
    """Read an HTTP response head; return (head, bytes after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive()
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


@asynccontextmanager
async def raw_peer(url: str, **headers: str) -> AsyncIterator[tuple[SocketStream, bytes]]:
    """A raw TCP client that has completed the upgrade; yields (stream, leftover)."""
    async with await anyio.connect_tcp("127.0.0.1", port_of(url)) as stream:
        await stream.send(upgrade_request(**headers))
        head, rest = await read_head(stream)
        assert head.startswith(b"HTTP/1.1 101"), head
        yield stream, rest


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    """A masked client-to-server frame, built by hand (for malformed input)."""
    first = (0x80 if fin else 0) | rsv | opcode
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def parse_server_frame(data: bytes) -> tuple[int, bytes, bytes]:
    """Parse one unmasked server frame: (opcode, payload, rest)."""
    opcode = data[0] & 0x0F
    n = data[1] & 0x7F
    offset = 2
    if n == 126:
        (n,) = struct.unpack("!H", data[2:4])
        offset = 4
    elif n == 127:
        (n,) = struct.unpack("!Q", data[2:10])
        offset = 10
    return opcode, data[offset : offset + n], data[offset + n :]


async def read_frame(stream: SocketStream, buffered: bytes = b"") -> tuple[int, bytes, bytes]:
    """Read one whole server frame from ``stream`` (after ``buffered`` bytes)."""
    data = buffered
    while True:
        if len(data) >= 2:
            n = data[1] & 0x7F
            need = 2 + (2 if n == 126 else 8 if n == 127 else 0)
            if len(data) >= need:
                size = n
                if n == 126:
                    (size,) = struct.unpack("!H", data[2:4])
                elif n == 127:
                    (size,) = struct.unpack("!Q", data[2:10])
                if len(data) >= need + size:
                    return parse_server_frame(data)
        try:
            data += await stream.receive()
        except anyio.EndOfStream:
            raise AssertionError(f"stream ended inside a frame: {data!r}") from None


def close_code(payload: bytes) -> int:
    return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else 1005


def wsproto_handshake(
    client_ext: Extension, server_ext: Extension
) -> tuple[Connection, Connection]:
    """Run wsproto's real opening handshake, each side offering or accepting its one
    extension (which must be enabled after it); return the (client, server) connections."""
    client = H11Handshake(ConnectionType.CLIENT)
    server = H11Handshake(ConnectionType.SERVER)
    server.receive_data(
        client.send(Request(host="example.com", target="/", extensions=[client_ext]))
    )
    assert isinstance(next(server.events()), Request)
    client.receive_data(server.send(AcceptConnection(extensions=[server_ext])))
    assert isinstance(next(client.events()), AcceptConnection)
    assert client_ext.enabled()
    assert server_ext.enabled()
    assert client.connection is not None
    assert server.connection is not None
    return client.connection, server.connection
