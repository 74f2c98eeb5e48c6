"""``WebSocket.send_many``: the frames ``send()`` makes for each message, in one write."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto.connection import ConnectionType
from wsproto.extensions import Extension

from anywire.errors import ConnectionClosed
from anywire.websocket import WebSocket
from anywire.websocket._deflate import BoundedDeflate
from anywire.websocket._frames import FastConnection
from tests.ws_fuzz import GatedStream

pytestmark = pytest.mark.anyio


class CountingStream(GatedStream):
    """Sends go through at once; ``writes`` counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.gate.set()
        self.writes = 0

    async def send(self, item: bytes) -> None:
        self.writes += 1
        await super().send(item)


def _socket(compression: bool) -> tuple[WebSocket, CountingStream]:
    extensions: list[Extension] = []
    if compression:
        ext = BoundedDeflate(threshold=16)
        assert ext.accept("permessage-deflate") is not None
        extensions.append(ext)
    stream = CountingStream()
    return WebSocket(stream, FastConnection(ConnectionType.SERVER, extensions)), stream


@given(
    messages=st.lists(st.text(max_size=200) | st.binary(max_size=300), max_size=8),
    compression=st.booleans(),
)
def test_send_many_writes_the_bytes_of_send_each_at_once(
    messages: list[str | bytes], compression: bool
) -> None:
    async def main() -> None:
        one_by_one, by_send = _socket(compression)
        batched, by_batch = _socket(compression)
        for message in messages:
            await one_by_one.send(message)
        await batched.send_many(messages)
        assert by_batch.sent == by_send.sent
        assert by_batch.writes == (1 if len(messages) > 1 else len(messages))
        await by_send.aclose()
        await by_batch.aclose()

    anyio.run(main)


async def test_send_many_takes_what_send_takes_and_keeps_its_turn() -> None:
    ws, stream = _socket(False)
    stream.gate = anyio.Event()  # writes wait: the batch holds the turn
    reference, ref_stream = _socket(False)
    batch: list[Any] = ["a", bytearray(b"b"), memoryview(b"c")]
    async with anyio.create_task_group() as tg:
        tg.start_soon(ws.send_many, batch)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(ws.send, "after")
        await anyio.wait_all_tasks_blocked()
        stream.gate.set()
    for message in [*batch, "after"]:
        await reference.send(message)
    assert stream.sent == ref_stream.sent
    assert stream.writes == 2
    with pytest.raises(TypeError):
        await ws.send_many(["ok", 42])  # type: ignore[list-item]
    await stream.aclose()
    await ref_stream.aclose()


async def test_send_many_after_close_raises() -> None:
    ws, stream = _socket(False)
    with anyio.move_on_after(0.01):
        await ws.close()  # no close frame comes back: the socket ends
    with pytest.raises(ConnectionClosed):
        await ws.send_many(["a", "b"])
    await stream.aclose()
