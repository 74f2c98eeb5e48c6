"""accept(asgi=...) driven by scripted ASGI receive/send callables."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from anywire import websocket
from anywire.errors import ConnectionClosed, InvalidHandshake

pytestmark = pytest.mark.anyio


class FakeHost:
    """Plays the ASGI server: queued incoming messages, recorded outgoing ones."""

    def __init__(self, *incoming: Mapping[str, Any], headers: Any = ()) -> None:
        self.incoming = deque(incoming)
        self.sent: list[Mapping[str, Any]] = []
        self.scope = {
            "type": "websocket",
            "path": "/ws",
            "headers": list(headers),
            "subprotocols": ["chat"],
        }

    async def receive(self) -> Mapping[str, Any]:
        if not self.incoming:
            await anyio.sleep_forever()
        await anyio.lowlevel.checkpoint()
        return self.incoming.popleft()

    async def send(self, message: Mapping[str, Any]) -> None:
        self.sent.append(message)

    @property
    def asgi(self) -> Any:
        return (self.scope, self.receive, self.send)


async def test_asgi_accept_echo_and_disconnect() -> None:
    host = FakeHost(
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hi"},
        {"type": "websocket.receive", "bytes": b"\x01"},
        {"type": "websocket.disconnect", "code": 1001},
    )
    ws = await websocket.AioServer.accept(asgi=host.asgi, subprotocols=["chat"])
    assert host.sent[0] == {"type": "websocket.accept", "subprotocol": "chat"}
    received = [m async for m in ws]
    assert received == ["hi", b"\x01"]
    with pytest.raises(ConnectionClosed):
        await ws.send("late")


async def test_asgi_send_after_disconnect_raises() -> None:
    host = FakeHost({"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1006})
    async with websocket.accept(asgi=host.asgi) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.receive()
        assert info.value.reason == 1006
        with pytest.raises(ConnectionClosed):
            await ws.send("x")


async def test_asgi_size_limit_closes_with_1009() -> None:
    host = FakeHost(
        {"type": "websocket.connect"}, {"type": "websocket.receive", "bytes": b"x" * 11}
    )
    ws = await websocket.accept(asgi=host.asgi, max_message_size=10)
    with pytest.raises(ConnectionClosed) as info:
        await ws.receive()
    assert info.value.reason == 1009
    assert host.sent[-1]["type"] == "websocket.close"
    assert host.sent[-1]["code"] == 1009


async def test_asgi_timeout_returns_none_and_close_sends_code() -> None:
    host = FakeHost({"type": "websocket.connect"})
    ws = await websocket.accept(asgi=host.asgi)
    assert await ws.receive(timeout=0) is None
    await ws.close(4001, "done")
    assert host.sent[-1] == {"type": "websocket.close", "code": 4001, "reason": "done"}


async def test_asgi_foreign_origin_is_refused() -> None:
    host = FakeHost(
        {"type": "websocket.connect"},
        headers=[(b"host", b"app.example"), (b"origin", b"http://evil.example")],
    )
    with pytest.raises(InvalidHandshake):
        await websocket.accept(asgi=host.asgi)
    assert host.sent[-1]["type"] == "websocket.close"
