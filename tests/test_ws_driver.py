"""The connection driver's read right and send turns, on asyncio and trio.

In owned mode ``receive()`` reads the socket itself; a reader task reads in its
place only when no task has received for a short while. These tests check what
that must not change: pings are answered and closes noticed while the program
only sends, a program polling with ``timeout=0`` gets its messages, tasks share
the read right (``close()`` while another task receives), and concurrent
``send()`` calls take turns, also when one of them is cancelled while waiting.
``FastConnection.send_message`` (what ``send()`` uses) makes the bytes of ``send()``
with an event.
"""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, TextMessage
from wsproto.extensions import Extension
from wsproto.utilities import LocalProtocolError

from anywire.errors import ConnectionClosed, ConnectionClosedOK
from anywire.websocket import WebSocket, connect
from anywire.websocket._deflate import BoundedDeflate
from anywire.websocket._frames import FastConnection
from tests.conftest import timeout
from tests.ws_fuzz import TEXT, GatedStream, frame, pop_frame
from tests.ws_helpers import client_frame, close_code, echo, raw_peer, read_frame, running_server

pytestmark = pytest.mark.anyio


async def test_a_handler_that_stopped_receiving_still_answers_pings_and_closes() -> None:
    release = anyio.Event()
    seen_connected: list[bool] = []

    async def receive_once_then_wait(ws: WebSocket) -> None:
        await ws.send(await ws.receive() or "")
        await release.wait()  # never receives again: the reader task answers meanwhile
        seen_connected.append(ws.connected)

    async with running_server(receive_once_then_wait) as url, raw_peer(url) as (stream, rest):
        with anyio.fail_after(timeout(5)):
            await stream.send(client_frame(0x1, b"hi"))
            opcode, payload, rest = await read_frame(stream, rest)
            assert (opcode, payload) == (0x1, b"hi")
            await stream.send(client_frame(0x9, b"still there?"))
            opcode, payload, rest = await read_frame(stream, rest)
            assert (opcode, payload) == (0xA, b"still there?")
            await stream.send(client_frame(0x8, b"\x03\xe8"))
            opcode, payload, rest = await read_frame(stream, rest)
            assert (opcode, close_code(payload)) == (0x8, 1000)
        release.set()
    assert seen_connected == [False]


async def test_polling_with_timeout_zero_gets_the_messages() -> None:
    async with running_server(echo) as url, connect(url) as ws:
        await ws.send("one")
        assert await ws.receive(timeout=0) is None  # not there yet
        with anyio.fail_after(timeout(5)):
            message = None
            while message is None:
                await anyio.sleep(0.01)  # the program's other work between polls
                message = await ws.receive(timeout=0)
        assert message == "one"


async def test_close_while_another_task_receives() -> None:
    raised: list[ConnectionClosed] = []

    async def receive_until_closed(ws: WebSocket) -> None:
        try:
            await ws.receive()
        except ConnectionClosed as exc:
            raised.append(exc)

    async with running_server(echo) as url:
        with anyio.fail_after(timeout(5)):
            async with connect(url) as ws, anyio.create_task_group() as tg:
                tg.start_soon(receive_until_closed, ws)
                await anyio.wait_all_tasks_blocked()
                await ws.close()
            assert ws.close_code == 1000
    assert len(raised) == 1
    assert isinstance(raised[0], ConnectionClosedOK)


async def test_a_sender_cancelled_while_waiting_for_its_turn_passes_it_on() -> None:
    stream = GatedStream()
    ws = WebSocket(stream, Connection(ConnectionType.SERVER))
    with anyio.fail_after(timeout(5)):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ws.send, "first")  # holds the turn: the socket is slow
            await anyio.wait_all_tasks_blocked()
            second = anyio.CancelScope()
            tg.start_soon(_send_in, second, ws, "second")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(ws.send, "third")
            await anyio.wait_all_tasks_blocked()
            second.cancel()  # gives up while waiting for its turn
            await anyio.wait_all_tasks_blocked()
            stream.gate.set()
    await stream.aclose()
    sent = bytearray(stream.sent)
    frames = [pop_frame(sent), pop_frame(sent)]
    assert [(f.opcode, f.payload) for f in frames if f is not None] == [
        (TEXT, b"first"),
        (TEXT, b"third"),
    ]
    assert not sent
    assert stream.sent.startswith(frame(TEXT, b"first", mask=None))
    assert ws.connected


async def _send_in(scope: anyio.CancelScope, ws: WebSocket, data: str) -> None:
    with scope:
        await ws.send(data)


def _server(compression: bool) -> FastConnection:
    extensions: list[Extension] = []
    if compression:
        ext = BoundedDeflate(threshold=16)
        assert ext.accept("permessage-deflate") is not None
        extensions.append(ext)
    return FastConnection(ConnectionType.SERVER, extensions=extensions)


@given(
    messages=st.lists(st.text(max_size=200) | st.binary(max_size=300), max_size=8),
    compression=st.booleans(),
)
def test_send_message_makes_the_bytes_of_send_with_an_event(
    messages: list[str | bytes], compression: bool
) -> None:
    by_event, direct = _server(compression), _server(compression)
    for message in messages:
        event = TextMessage(data=message) if isinstance(message, str) else BytesMessage(message)
        assert direct.send_message(message) == by_event.send(event)
    by_event.send(CloseConnection(code=1000))
    direct.send(CloseConnection(code=1000))
    with pytest.raises(LocalProtocolError):
        direct.send_message("after the close")
