"""Tests of the bounded permessage-deflate extension (pure: no sockets, no event loop).

Peers: wsproto's own ``PerMessageDeflate`` (our reference) and the ``websockets``
library's sans-I/O protocol, an independent implementation.
"""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame
from websockets.frames import Opcode as WsOpcode
from websockets.http11 import Request as WsRequest
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Request,
)
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import Opcode, RsvBits
from wsproto.handshake import H11Handshake

from anywire.errors import InvalidHandshake
from anywire.websocket._deflate import BoundedDeflate, default_extensions
from tests.ws_helpers import wsproto_handshake

MiB = 2**20
PMD = "permessage-deflate"

# -- helpers -------------------------------------------------------------------------


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False, mask: bool = False
) -> bytes:
    """Build one frame by hand (a zero masking key when ``mask``)."""
    head = bytes([(fin << 7) | (rsv1 << 6) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([(mask << 7) | n])
    elif n < 2**16:
        head += bytes([(mask << 7) | 126]) + struct.pack("!H", n)
    else:
        head += bytes([(mask << 7) | 127]) + struct.pack("!Q", n)
    return head + (b"\0\0\0\0" if mask else b"") + payload


def frame_headers(data: bytes) -> list[tuple[bool, bool, int, int]]:
    """(fin, rsv1, opcode, payload length) of each frame in ``data``."""
    out = []
    while data:
        length, offset = data[1] & 0x7F, 2
        if length == 126:
            (length,), offset = struct.unpack("!H", data[2:4]), 4
        elif length == 127:
            (length,), offset = struct.unpack("!Q", data[2:10]), 10
        offset += 4 if data[1] & 0x80 else 0
        out.append((bool(data[0] & 0x80), bool(data[0] & 0x40), data[0] & 0x0F, length))
        data = data[offset + length :]
    return out


def deflate(data: bytes, bits: int = 15) -> bytes:
    """Compress one whole message the RFC 7692 way (sync flush, tail removed)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def negotiated_client(ext: BoundedDeflate | None = None) -> Connection:
    """A client connection with ``ext`` enabled by a plain server response."""
    ext = ext or BoundedDeflate()
    ext.finalize(PMD)
    return Connection(ConnectionType.CLIENT, extensions=[ext])


def feed(conn: Connection, data: bytes, sizes: Sequence[int] = ()) -> list[Event]:
    """Feed ``data`` in chunks of ``sizes`` (then the rest); return the events."""
    events: list[Event] = []
    for size in (*sizes, len(data)):
        conn.receive_data(data[:size])
        data = data[size:]
        events.extend(conn.events())
    return events


def collate(events: Sequence[Event]) -> list[tuple[str, Any]]:
    """Reassemble message chunks: ("ping", payload), ("msg", whole message), ("other", e)."""
    out: list[tuple[str, Any]] = []
    chunks: list[Any] = []
    for event in events:
        if isinstance(event, Ping):
            out.append(("ping", bytes(event.payload)))
        elif isinstance(event, Message):
            chunks.append(event.data if isinstance(event.data, str) else bytes(event.data))
            if event.message_finished:
                out.append(("msg", chunks[0][:0].join(chunks)))
                chunks = []
        else:
            out.append(("other", event))
    return out


# A script: messages, each a list of (fragment, send a ping after it); all fragments of
# one message have the message's type. Repeated words make it worth compressing.
_words = st.sampled_from(["", "a", "websocket ", "deflate ", "\u20ac", "\U0001f600", "zz" * 40])
_text = st.lists(_words, max_size=30).map("".join)
_binary = st.one_of(st.binary(max_size=300), _text.map(str.encode))
Script = list[list[tuple[Any, bool]]]


def _message(fragment: st.SearchStrategy[Any]) -> st.SearchStrategy[list[tuple[Any, bool]]]:
    return st.lists(st.tuples(fragment, st.booleans()), min_size=1, max_size=4)


scripts = st.lists(st.one_of(_message(_text), _message(_binary)), max_size=8)


def play(conn: Connection, script: Script) -> tuple[bytes, list[tuple[str, Any]]]:
    """Send ``script`` from wsproto's ``conn``; return the bytes and what a peer must see."""
    out, expected = bytearray(), []
    for message in script:
        for index, (fragment, ping) in enumerate(message):
            last = index == len(message) - 1
            out += conn.send(Message(data=fragment, message_finished=last))
            if last:
                expected.append(("msg", message[0][0][:0].join(f for f, _ in message)))
            if ping:
                out += conn.send(Ping(payload=b"p%d" % index))
                expected.append(("ping", b"p%d" % index))
    return bytes(out), expected


# -- negotiation: the server ---------------------------------------------------------

SERVER_CASES = [
    # (server config, offer, answer)
    ({}, PMD, True),
    ({}, f"{PMD}; client_max_window_bits", True),  # Chrome, node ws, websockets
    (
        {},
        f"{PMD}; client_max_window_bits=15; server_max_window_bits=15",
        "server_max_window_bits=15",
    ),
    ({}, f"{PMD}; client_max_window_bits=10", "client_max_window_bits=10"),
    ({}, f'{PMD}; client_max_window_bits="10"', "client_max_window_bits=10"),
    ({}, f"{PMD}; client_max_window_bits=8", "client_max_window_bits=8"),  # we can inflate 8
    ({}, f"{PMD}; server_max_window_bits=10", "server_max_window_bits=10"),
    ({}, f"{PMD}; server_no_context_takeover", "server_no_context_takeover"),
    ({}, f"{PMD}; client_no_context_takeover", "client_no_context_takeover"),
    (
        {},
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=12; client_max_window_bits=11",
        "server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=12; client_max_window_bits=11",
    ),
    ({}, f"{PMD}; client_max_window_bits=7", None),
    ({}, f"{PMD}; client_max_window_bits=16", None),
    ({}, f"{PMD}; client_max_window_bits=09", None),  # leading zero
    ({}, f"{PMD}; client_max_window_bits=", None),
    ({}, f"{PMD}; client_max_window_bits=abc", None),
    ({}, f"{PMD}; server_max_window_bits", None),  # needs a value
    ({}, f"{PMD}; server_max_window_bits=8", None),  # zlib cannot deflate with 8
    ({}, f"{PMD}; server_no_context_takeover=1", None),
    ({}, f"{PMD}; server_no_context_takeover; server_no_context_takeover", None),
    ({}, f"{PMD}; client_max_window_bits; client_max_window_bits=10", None),
    ({}, f"{PMD}; foo", None),
    ({}, f"{PMD}; ", None),
    ({}, "x-webkit-deflate-frame", None),
    # Several offers in one string: the first acceptable one wins.
    ({}, f"{PMD}; server_max_window_bits=7, {PMD}; client_max_window_bits", True),
    ({}, f"{PMD}; server_no_context_takeover, {PMD}", "server_no_context_takeover"),
    ({}, f"{PMD}; foo, {PMD}; bar", None),
    # Configured servers.
    ({"client_max_window_bits": 10}, f"{PMD}; client_max_window_bits", "client_max_window_bits=10"),
    (
        {"client_max_window_bits": 10},
        f"{PMD}; client_max_window_bits=12",
        "client_max_window_bits=10",
    ),
    (
        {"client_max_window_bits": 10},
        f"{PMD}; client_max_window_bits=9",
        "client_max_window_bits=9",
    ),
    ({"client_max_window_bits": 10}, PMD, None),  # the client could not limit its window
    ({"server_max_window_bits": 10}, PMD, "server_max_window_bits=10"),
    (
        {"server_max_window_bits": 10},
        f"{PMD}; server_max_window_bits=12",
        "server_max_window_bits=10",
    ),
    (
        {"server_max_window_bits": 10},
        f"{PMD}; server_max_window_bits=9",
        "server_max_window_bits=9",
    ),
    ({"server_no_context_takeover": True}, PMD, "server_no_context_takeover"),
    ({"client_no_context_takeover": True}, PMD, "client_no_context_takeover"),
]


@pytest.mark.parametrize(("config", "offer", "answer"), SERVER_CASES)
def test_accept(config: dict[str, Any], offer: str, answer: str | bool | None) -> None:
    ext = BoundedDeflate(**config)
    assert ext.accept(offer) == answer
    assert ext.enabled() is (answer is not None)


def test_accept_answers_once() -> None:
    ext = BoundedDeflate()
    assert ext.accept(f"{PMD}; server_no_context_takeover") == "server_no_context_takeover"
    assert ext.accept(PMD) is None
    assert ext.server_no_context_takeover


def test_accept_applies_the_agreed_parameters() -> None:
    ext = BoundedDeflate(server_max_window_bits=12)
    ext.accept(f"{PMD}; client_max_window_bits=9; client_no_context_takeover")
    assert (ext.client_max_window_bits, ext.server_max_window_bits) == (9, 12)
    assert ext.client_no_context_takeover
    assert not ext.server_no_context_takeover


@pytest.mark.parametrize(
    ("header", "answer"),
    [
        (f"{PMD}; server_max_window_bits=7, {PMD}; client_max_window_bits", PMD),
        (f"{PMD}; server_no_context_takeover, {PMD}", f"{PMD}; server_no_context_takeover"),
        (f"{PMD}; foo, {PMD}; server_max_window_bits=11", f"{PMD}; server_max_window_bits=11"),
        (f"{PMD}; foo", None),
    ],
)
def test_wsproto_server_handshake_with_several_offers(header: str, answer: str | None) -> None:
    server = H11Handshake(ConnectionType.SERVER)
    server.receive_data(
        b"GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Extensions: " + header.encode() + b"\r\n\r\n"
    )
    assert isinstance(next(server.events()), Request)
    response = server.send(AcceptConnection(extensions=[BoundedDeflate()])).decode()
    found = [
        line for line in response.split("\r\n") if line.lower().startswith("sec-websocket-ext")
    ]
    assert found == ([] if answer is None else [f"Sec-WebSocket-Extensions: {answer}"])


# -- negotiation: the client ---------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "offer"),
    [
        ({}, "client_max_window_bits"),
        (
            {
                "client_max_window_bits": 10,
                "server_max_window_bits": 11,
                "client_no_context_takeover": True,
                "server_no_context_takeover": True,
            },
            "client_max_window_bits=10; server_max_window_bits=11; "
            "client_no_context_takeover; server_no_context_takeover",
        ),
    ],
)
def test_offer(config: dict[str, Any], offer: str) -> None:
    assert BoundedDeflate(**config).offer() == offer


CLIENT_CASES = [
    # (client config, response parameters, agreed (client bits, server bits, cnct, snct) or None)
    ({}, "", (15, 15, False, False)),
    ({}, "; server_no_context_takeover", (15, 15, False, True)),
    ({}, "; client_no_context_takeover", (15, 15, True, False)),
    ({}, "; server_max_window_bits=8", (15, 8, False, False)),
    ({}, "; client_max_window_bits=10", (10, 15, False, False)),
    ({}, '; client_max_window_bits="10"', (10, 15, False, False)),
    ({}, "; client_max_window_bits", None),  # a response needs a value
    # zlib cannot deflate with 8: accepted, and we then send every message uncompressed
    ({}, "; client_max_window_bits=8", (8, 15, False, False)),
    ({}, "; client_max_window_bits=16", None),
    ({}, "; server_max_window_bits=7", None),
    ({}, "; server_no_context_takeover=1", None),
    ({}, "; server_no_context_takeover; server_no_context_takeover", None),
    ({}, "; foo", None),
    ({"server_max_window_bits": 10}, "; server_max_window_bits=9", (15, 9, False, False)),
    ({"server_max_window_bits": 10}, "; server_max_window_bits=11", None),
    ({"server_max_window_bits": 10}, "", None),  # our limit was ignored
    ({"client_max_window_bits": 10}, "", (10, 15, False, False)),
    ({"client_max_window_bits": 10}, "; client_max_window_bits=9", (9, 15, False, False)),
    ({"client_max_window_bits": 10}, "; client_max_window_bits=12", None),
    ({"server_no_context_takeover": True}, "", None),  # our request was ignored
    ({"server_no_context_takeover": True}, "; server_no_context_takeover", (15, 15, False, True)),
    ({"client_no_context_takeover": True}, "", (15, 15, True, False)),
]


@pytest.mark.parametrize(("config", "params", "agreed"), CLIENT_CASES)
def test_finalize(
    config: dict[str, Any], params: str, agreed: tuple[int, int, bool, bool] | None
) -> None:
    ext = BoundedDeflate(**config)
    if agreed is None:
        with pytest.raises(InvalidHandshake):
            ext.finalize(PMD + params)
        assert not ext.enabled()
        return
    ext.finalize(PMD + params)
    assert ext.enabled()
    assert agreed == (
        ext.client_max_window_bits,
        ext.server_max_window_bits,
        ext.client_no_context_takeover,
        ext.server_no_context_takeover,
    )


@pytest.mark.parametrize("header", [f"{PMD}; foo", f"{PMD}, {PMD}"])
def test_wsproto_client_handshake_fails_on_a_bad_response(header: str) -> None:
    client = H11Handshake(ConnectionType.CLIENT)
    server = H11Handshake(ConnectionType.SERVER)
    server.receive_data(
        client.send(Request(host="example.com", target="/", extensions=[BoundedDeflate()]))
    )
    next(server.events())
    response = server.send(AcceptConnection()).replace(
        b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: " + header.encode() + b"\r\n\r\n"
    )
    with pytest.raises(InvalidHandshake):
        client.receive_data(response)


@pytest.mark.parametrize(
    "config",
    [
        {"client_max_window_bits": 8},
        {"server_max_window_bits": 16},
        {"threshold": -1},
        {"max_message_size": -1},
        {"compress_level": 10},
        {"mem_level": 0},
    ],
)
def test_invalid_configuration(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        BoundedDeflate(**config)


def test_default_extensions() -> None:
    assert default_extensions(compression=False, max_message_size=MiB) == []
    first, second = (
        default_extensions(compression=True, max_message_size=MiB, threshold=64) for _ in "ab"
    )
    assert len(first) == 1
    assert isinstance(first[0], BoundedDeflate)
    assert first[0] is not second[0]
    assert (first[0].threshold, first[0].max_message_size) == (64, MiB)
    assert "not negotiated" in repr(first[0])


# -- interop with wsproto's PerMessageDeflate ----------------------------------------

_bits = st.none() | st.integers(9, 15)
ours = st.builds(
    BoundedDeflate,
    st.booleans(),
    _bits,
    st.booleans(),
    _bits,
    threshold=st.sampled_from([0, 0, 1, 50, 128]),
    max_message_size=st.none(),
)
theirs = st.builds(
    PerMessageDeflate, st.booleans(), st.integers(9, 15), st.booleans(), st.integers(9, 15)
)
chunking = st.lists(st.integers(1, 200), max_size=10)


@settings(deadline=None)
@given(
    st.sampled_from(["ours-theirs", "theirs-ours", "ours-ours", "theirs-theirs"]),
    st.data(),
    scripts,
    scripts,
    chunking,
    chunking,
)
def test_differential_against_wsproto(
    pairing: str,
    data: st.DataObject,
    to_server: Script,
    to_client: Script,
    sizes_a: list[int],
    sizes_b: list[int],
) -> None:
    make = {"ours": ours, "theirs": theirs}
    client_kind, server_kind = pairing.split("-")
    client, server = wsproto_handshake(data.draw(make[client_kind]), data.draw(make[server_kind]))
    for sender, receiver, script, sizes, kind in (
        (client, server, to_server, sizes_a, server_kind),
        (server, client, to_client, sizes_b, client_kind),
        (client, server, to_server, sizes_b, server_kind),  # again, with the contexts in use
    ):
        if kind == "theirs":
            # wsproto 1.3.2 loses track of a compressed message when a control frame
            # arrives inside it (its frame_inbound_complete resets the message state on
            # the ping), so wsproto receivers only get pings between messages.
            script = [
                [(f, ping and i == len(m) - 1) for i, (f, ping) in enumerate(m)] for m in script
            ]
        wire, expected = play(sender, script)
        assert collate(feed(receiver, wire, sizes)) == expected


def test_threshold() -> None:
    client, server = wsproto_handshake(BoundedDeflate(threshold=128), PerMessageDeflate())
    small, large = b"x" * 127, b"x" * 128
    wire = client.send(Message(data=small)) + client.send(Message(data=large))
    assert [rsv1 for _, rsv1, _, _ in frame_headers(wire)] == [False, True]
    assert collate(feed(server, wire)) == [("msg", small), ("msg", large)]
    # A fragmented message is compressed whatever its first fragment; RSV1 on frame 1 only.
    wire = b"".join(
        client.send(Message(data=part, message_finished=last))
        for part, last in (("tiny", False), ("y" * 500, False), ("end", True))
    )
    assert [(rsv1, op) for _, rsv1, op, _ in frame_headers(wire)] == [
        (True, 1),
        (False, 0),
        (False, 0),
    ]
    assert collate(feed(server, wire)) == [("msg", "tiny" + "y" * 500 + "end")]


def test_control_frames_are_not_compressed() -> None:
    client, server = wsproto_handshake(BoundedDeflate(threshold=0), PerMessageDeflate())
    wire = client.send(Ping(payload=b"x" * 100)) + client.send(CloseConnection(code=1000))
    assert [rsv1 for _, rsv1, _, _ in frame_headers(wire)] == [False, False]
    events = feed(server, wire)
    assert isinstance(events[0], Ping)
    assert events[0].payload == b"x" * 100


@pytest.mark.parametrize("side", ["client", "server"])
@pytest.mark.parametrize("takeover", [True, False])
def test_no_context_takeover_resets_the_compressor(side: str, takeover: bool) -> None:
    ext = BoundedDeflate(
        client_no_context_takeover=not takeover and side == "client",
        server_no_context_takeover=not takeover and side == "server",
    )
    if side == "client":
        sender, receiver = wsproto_handshake(ext, PerMessageDeflate())
    else:
        receiver, sender = wsproto_handshake(PerMessageDeflate(), ext)
    text = " ".join(f"word{i % 97} {i * 7919 % 1000}" for i in range(300))
    first, second = sender.send(Message(data=text)), sender.send(Message(data=text))
    assert collate(feed(receiver, first + second)) == [("msg", text), ("msg", text)]
    if takeover:
        assert len(second) < len(first) // 4
    else:
        assert len(second) >= len(first)


# -- interop with the websockets library ----------------------------------------------


def ws_frames(events: Sequence[object]) -> list[tuple[str, Any]]:
    """Reassemble the frames a websockets protocol received."""
    out: list[tuple[str, Any]] = []
    chunks: list[bytes] = []
    text = False
    for event in events:
        assert isinstance(event, Frame)
        if event.opcode is WsOpcode.PING:
            out.append(("ping", event.data))
            continue
        if event.opcode is not WsOpcode.CONT:
            text, chunks = event.opcode is WsOpcode.TEXT, []
        chunks.append(bytes(event.data))
        if event.fin:
            whole = b"".join(chunks)
            out.append(("msg", whole.decode() if text else whole))
    return out


def ws_play(proto: ClientProtocol | ServerProtocol, script: Script) -> list[tuple[str, Any]]:
    """Send ``script`` from a websockets protocol; return what a peer must see."""
    expected = []
    for message in script:
        send: Callable[..., None] = (
            proto.send_text if isinstance(message[0][0], str) else proto.send_binary
        )
        for index, (fragment, ping) in enumerate(message):
            payload = fragment.encode() if isinstance(fragment, str) else fragment
            send(payload, fin=index == len(message) - 1)
            send = proto.send_continuation
            if index == len(message) - 1:
                expected.append(("msg", message[0][0][:0].join(f for f, _ in message)))
            if ping:
                proto.send_ping(b"p%d" % index)
                expected.append(("ping", b"p%d" % index))
    return expected


def ws_client_pair(
    ours: BoundedDeflate, factory: ClientPerMessageDeflateFactory
) -> tuple[ClientProtocol, Connection]:
    client = ClientProtocol(parse_uri("ws://example.com/"), extensions=[factory], max_size=None)
    client.send_request(client.connect())
    server = H11Handshake(ConnectionType.SERVER)
    server.receive_data(b"".join(client.data_to_send()))
    assert isinstance(next(server.events()), Request)
    client.receive_data(server.send(AcceptConnection(extensions=[ours])))
    client.events_received()
    assert client.state is State.OPEN, client.handshake_exc
    assert server.connection is not None
    return client, server.connection


def ws_server_pair(
    ours: BoundedDeflate, factory: ServerPerMessageDeflateFactory
) -> tuple[Connection, ServerProtocol]:
    server = ServerProtocol(extensions=[factory], max_size=None)
    client = H11Handshake(ConnectionType.CLIENT)
    server.receive_data(client.send(Request(host="example.com", target="/", extensions=[ours])))
    (request,) = server.events_received()
    assert isinstance(request, WsRequest)
    server.send_response(server.accept(request))
    client.receive_data(b"".join(server.data_to_send()))
    assert isinstance(next(client.events()), AcceptConnection)
    assert client.connection is not None
    assert ours.enabled()
    return client.connection, server


def _ws_exchange(
    wsp: ClientProtocol | ServerProtocol, conn: Connection, to_us: Script, to_them: Script
) -> None:
    for _ in range(2):  # twice, so the second round runs with the contexts in use
        expected = ws_play(wsp, to_us)
        assert collate(feed(conn, b"".join(wsp.data_to_send()))) == expected
        wire, expected = play(conn, to_them)
        wsp.receive_data(wire)
        assert ws_frames(wsp.events_received()) == expected
        wsp.data_to_send()  # drop the pongs


ws_client_factories = st.builds(
    ClientPerMessageDeflateFactory,
    server_no_context_takeover=st.booleans(),
    client_no_context_takeover=st.booleans(),
    server_max_window_bits=st.none() | st.integers(9, 15),
    client_max_window_bits=st.none() | st.just(True) | st.integers(9, 15),
)
ws_server_factories = st.builds(
    ServerPerMessageDeflateFactory,
    server_no_context_takeover=st.booleans(),
    client_no_context_takeover=st.booleans(),
    server_max_window_bits=st.none() | st.integers(9, 15),
    client_max_window_bits=st.none() | st.integers(9, 15),
)


@settings(deadline=None, max_examples=60)
@given(ours, ws_client_factories, scripts, scripts)
def test_interop_websockets_client(
    ext: BoundedDeflate, factory: ClientPerMessageDeflateFactory, to_us: Script, to_them: Script
) -> None:
    wsp, conn = ws_client_pair(ext, factory)
    _ws_exchange(wsp, conn, to_us, to_them)


@settings(deadline=None, max_examples=60)
@given(ours, ws_server_factories, scripts, scripts)
def test_interop_websockets_server(
    ext: BoundedDeflate, factory: ServerPerMessageDeflateFactory, to_us: Script, to_them: Script
) -> None:
    conn, wsp = ws_server_pair(ext, factory)
    _ws_exchange(wsp, conn, to_us, to_them)


def test_interop_websockets_default_settings_and_threshold() -> None:
    # websockets' defaults: 12-bit windows both ways, memLevel 5.
    server = ServerPerMessageDeflateFactory(
        server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
    )
    conn, wsp = ws_server_pair(ext := BoundedDeflate(), server)
    assert (ext.client_max_window_bits, ext.server_max_window_bits) == (12, 12)
    wire = conn.send(Message(data="short")) + conn.send(Message(data="long " * 100))
    assert [rsv1 for _, rsv1, _, _ in frame_headers(wire)] == [False, True]
    wsp.receive_data(wire)
    assert ws_frames(wsp.events_received()) == [("msg", "short"), ("msg", "long " * 100)]


# -- bounds ----------------------------------------------------------------------------

BOMB = deflate(bytes(10 * 10**6))  # 10 MB of zeros in ~10 KB


def _bomb_frames(fragment: int) -> bytes:
    parts = [BOMB[i : i + fragment] for i in range(0, len(BOMB), fragment)]
    return b"".join(
        frame(0x2 if i == 0 else 0x0, part, fin=i == len(parts) - 1, rsv1=i == 0)
        for i, part in enumerate(parts)
    )


def _measure(conn: Connection, data: bytes, sizes: Sequence[int]) -> tuple[list[Event], int]:
    tracemalloc.start()
    try:
        events = feed(conn, data, sizes)
        return events, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("fragment", "sizes"),
    [
        (len(BOMB), ()),  # one frame, all at once
        (len(BOMB), [1] * 3000),  # one frame, the first 3000 bytes one by one
        (64, ()),  # many small frames
        (64, [1] * 3000 + [7] * 100),  # many small frames, fed in tiny chunks
    ],
    ids=["frame", "frame-bytewise", "fragments", "fragments-bytewise"],
)
def test_compression_bomb_is_bounded(fragment: int, sizes: list[int]) -> None:
    assert len(BOMB) < 20_000
    conn = negotiated_client(BoundedDeflate(max_message_size=MiB))
    events, peak = _measure(conn, _bomb_frames(fragment), sizes)
    *messages, close = events
    assert isinstance(close, CloseConnection)
    assert close.code == 1009
    assert sum(len(e.data) for e in messages if isinstance(e, BytesMessage)) <= MiB
    assert all(isinstance(e, BytesMessage) and not e.message_finished for e in messages)
    assert peak < 3 * MiB


def test_wsproto_inflates_the_bomb_unbounded() -> None:
    """The problem this module solves: wsproto's extension allocates the whole message."""
    ext = PerMessageDeflate()
    ext.finalize(PMD)
    conn = Connection(ConnectionType.CLIENT, extensions=[ext])
    events, peak = _measure(conn, _bomb_frames(len(BOMB)), ())
    assert isinstance(events[0], BytesMessage)
    assert peak > 10 * MiB


@pytest.mark.parametrize("compressed", [True, False])
def test_max_message_size_boundary(compressed: bool) -> None:
    limit = 1000
    for size, ok in ((limit, True), (limit + 1, False)):
        conn = negotiated_client(BoundedDeflate(max_message_size=limit))
        body = bytes(size)
        payload = deflate(body) if compressed else body
        wire = frame(0x2, payload[:3], fin=False, rsv1=compressed) + frame(0x0, payload[3:])
        result = collate(feed(conn, wire))
        if ok:
            assert result == [("msg", body)]
        else:
            assert isinstance(result[-1][1], CloseConnection)
            assert result[-1][1].code == 1009


def test_unbounded_when_max_message_size_is_none() -> None:
    conn = negotiated_client(BoundedDeflate(max_message_size=None))
    assert collate(feed(conn, frame(0x2, BOMB, rsv1=True))) == [("msg", bytes(10 * 10**6))]


# -- malformed input -------------------------------------------------------------------


def _close_code(wire: bytes) -> int:
    events = feed(negotiated_client(), wire)
    assert isinstance(events[-1], CloseConnection)
    return events[-1].code


def test_rsv1_on_a_control_frame_fails() -> None:
    assert _close_code(frame(0x9, b"", rsv1=True)) == 1002


def test_rsv1_on_a_continuation_frame_fails() -> None:
    wire = frame(0x2, deflate(b"ab"), fin=False, rsv1=True) + frame(0x0, b"", rsv1=True)
    assert _close_code(wire) == 1002


def test_corrupt_deflate_data_fails() -> None:
    assert _close_code(frame(0x2, b"\xff\xff\xff\xff", rsv1=True)) == 1007


def test_data_after_a_final_block_fails() -> None:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    ended = compressor.compress(b"hello") + compressor.flush()  # BFINAL set
    assert _close_code(frame(0x2, ended + deflate(b"more"), rsv1=True)) == 1007


def test_messages_ending_with_a_final_block() -> None:
    # RFC 7692 section 7.2.3.4 lets a sender end a message with BFINAL: each message then
    # starts a new deflate stream.
    wire = b""
    for word in (b"first", b"second"):
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        wire += frame(0x2, compressor.compress(word) + compressor.flush(), rsv1=True)
    assert collate(feed(negotiated_client(), wire)) == [("msg", b"first"), ("msg", b"second")]


def test_control_frame_inside_a_compressed_message() -> None:
    payload = deflate("ünïcode".encode() * 20)
    wire = (
        frame(0x1, payload[:5], fin=False, rsv1=True)
        + frame(0x9, b"ping")
        + frame(0x0, payload[5:])
    )
    assert collate(feed(negotiated_client(), wire, [1] * len(wire))) == [
        ("ping", b"ping"),
        ("msg", "ünïcode" * 20),
    ]


def test_client_told_to_use_an_8_bit_window_sends_uncompressed() -> None:
    ext = BoundedDeflate(threshold=0)
    ext.finalize(PMD + "; client_max_window_bits=8")

    class Client:
        client = True

    rsv, data = ext.frame_outbound(
        Client(),  # type: ignore[arg-type]
        Opcode.TEXT,
        RsvBits(False, False, False),
        b"x" * 1000,
        True,
    )
    assert not rsv.rsv1
    assert data == b"x" * 1000
