"""Differential tests of our frame codec, ``FastConnection`` (pure: no sockets, no loop).

The contract: for the same bytes fed in the same chunks, ``FastConnection`` yields the
same events as wsproto's ``Connection`` (same classes, data and types, flags, close
codes and reasons) and goes through the same states; for the same events sent, a server
sends the same bytes and a client the same bytes once unmasked, or both raise the same
error. The ``websockets`` library's sans-I/O protocol is an independent second peer.

``HYPOTHESIS_PROFILE=long`` runs many more examples.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode as WsOpcode
from websockets.http11 import Request as WsRequest
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits
from wsproto.handshake import H11Handshake

from anywire.websocket._deflate import BoundedDeflate
from anywire.websocket._frames import FastConnection, _xor
from tests.ws_helpers import wsproto_handshake

CLIENT, SERVER = ConnectionType.CLIENT, ConnectionType.SERVER
OTHER = {CLIENT: SERVER, SERVER: CLIENT}
PMD = "permessage-deflate"
Conn = Connection | FastConnection

settings.register_profile("frames", deadline=None, max_examples=200)
settings.register_profile("long", deadline=None, max_examples=2000)
PROFILE = settings.get_profile(
    "long" if os.environ.get("HYPOTHESIS_PROFILE") == "long" else "frames"
)
FEW = settings(PROFILE, max_examples=max(20, PROFILE.max_examples // 3))

# -- helpers -------------------------------------------------------------------------


def describe(event: Event) -> tuple[Any, ...]:
    """An event as comparable values, including the type of each field (bytes, enum...)."""
    values = [getattr(event, field.name) for field in dataclasses.fields(event)]
    return (type(event).__name__, *((type(v).__name__, v) for v in values))


def outcome(action: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """("ok", result) or ("raised", exception type, message): comparable across sides."""
    try:
        return ("ok", action(*args))
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


def negotiate(kind: str, config: dict[str, Any]) -> tuple[list[Extension], list[Extension]]:
    """Fresh (client, server) extension lists, agreed by wsproto's real handshake."""
    if kind == "none":
        return [], []
    factory: Callable[[], Extension] = {
        "bounded": lambda: BoundedDeflate(**config),
        "wsproto": lambda: PerMessageDeflate(
            config.get("client_no_context_takeover", False),
            None,
            config.get("server_no_context_takeover", False),
        ),
    }[kind]
    client_ext, server_ext = factory(), factory()
    wsproto_handshake(client_ext, server_ext)
    return [client_ext], [server_ext]


def make(cls: type[Conn], role: ConnectionType, kind: str = "none", **config: Any) -> Any:
    client_exts, server_exts = negotiate(kind, config)
    return cls(role, extensions=client_exts if role is CLIENT else server_exts)


def receivers(role: ConnectionType, kind: str = "none", **config: Any) -> tuple[Any, Any]:
    """(wsproto's, ours): two receivers of ``role`` with identically negotiated extensions."""
    return make(Connection, role, kind, **config), make(FastConnection, role, kind, **config)


def split(data: bytes, how: str | list[int]) -> list[bytes]:
    """``data`` in chunks: "bytes" one at a time, "whole", or a list of sizes (then the rest)."""
    if how == "whole":
        return [data]
    if how == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    chunks = []
    for size in how:
        chunks.append(data[:size])
        data = data[size:]
    return [*chunks, data]


def feed_both(theirs: Conn, ours: Conn, chunks: Iterable[bytes | None]) -> list[Any]:
    """Feed each chunk to both; assert the same outcome, events and state each time."""
    log: list[Any] = []
    for chunk in chunks:
        results = [outcome(c.receive_data, chunk) for c in (theirs, ours)]
        assert results[0] == results[1]
        # The state after each event too: events() parses lazily, as wsproto's does.
        events = [[(describe(e), c.state) for e in c.events()] for c in (theirs, ours)]
        assert events[0] == events[1], f"after {chunk!r}"
        assert theirs.state is ours.state
        log.extend(event for event, _ in events[0])
    return log


def xor_naive(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def build_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    key: bytes | None = None,
    form: str = "min",
) -> bytes:
    """One frame by hand. ``form``: "min" length, or force "16"/"64" bits, or "msb" set."""
    n = len(payload)
    if form == "min":
        form = "7" if n < 126 else "16" if n < 2**16 else "64"
    if form == "7":
        length = bytes([n])
    elif form == "16":
        length = bytes([126]) + struct.pack("!H", n)
    else:
        length = bytes([127]) + struct.pack("!Q", n | (1 << 63 if form == "msb" else 0))
    head = bytes([fin << 7 | rsv << 4 | opcode, length[0] | (0x80 if key else 0)]) + length[1:]
    return head + (key + xor_naive(payload, key) if key else payload)


def unmasked(wire: bytes) -> bytes:
    """Client frames with their masks removed (bit cleared, key dropped, payload XORed)."""
    out, pos = bytearray(), 0
    while pos < len(wire):
        b0, b1 = wire[pos], wire[pos + 1]
        assert b1 & 0x80, "a client frame must be masked"
        size = {126: 2, 127: 8}.get(b1 & 0x7F, 0)
        ext = wire[pos + 2 : pos + 2 + size]
        length = int.from_bytes(ext, "big") if size else b1 & 0x7F
        pos += 2 + size + 4
        key = wire[pos - 4 : pos]
        out += bytes([b0, b1 & 0x7F]) + ext + xor_naive(wire[pos : pos + length], key)
        pos += length
    return bytes(out)


def collate(events: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Described events with message chunks joined: ("msg", data), ("ping", p), ..."""
    out: list[Any] = []
    parts: list[Any] = []
    for name, *fields in events:
        values = [v for _, v in fields]
        if name in ("TextMessage", "BytesMessage"):
            parts.append(values[0])
            if values[2]:  # message_finished
                out.append(("msg", parts[0][:0].join(parts)))
                parts = []
        elif name == "CloseConnection":
            out.append(("close", int(values[0]), values[1]))
        else:
            out.append((name.lower(), values[0]))
    return out


# -- scripts: what a peer sends --------------------------------------------------------

_chars = st.characters(codec="utf-8")  # any code point but surrogates
_texts = st.text(_chars, max_size=12) | st.text(_chars, max_size=150)
_binaries = st.binary(max_size=12) | st.binary(max_size=300)
_control = st.binary(max_size=125)
_message = st.one_of(
    st.lists(st.tuples(_texts, st.booleans()), min_size=1, max_size=4),
    st.lists(st.tuples(_binaries, st.booleans()), min_size=1, max_size=4),
)
_sendable_codes = st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012])
_close = st.one_of(
    st.tuples(st.just("close"), _sendable_codes | st.integers(3000, 4999), st.text(_chars)),
    st.just(("close", CloseReason.NO_STATUS_RCVD, "")),
)
_item = st.one_of(
    _message.map(lambda m: ("msg", m)),
    st.tuples(st.sampled_from(["ping", "pong"]), _control),
)
scripts = st.tuples(st.lists(_item, max_size=6), st.none() | _close).map(
    lambda t: t[0] + ([t[1]] if t[1] else [])
)
chunkings = st.one_of(
    st.just("whole"), st.just("bytes"), st.lists(st.integers(1, 40), min_size=1, max_size=30)
)
ext_kinds = st.sampled_from(["none", "none", "bounded", "wsproto"])
deflate_configs = st.fixed_dictionaries(
    {"client_no_context_takeover": st.booleans(), "server_no_context_takeover": st.booleans()},
    optional={"threshold": st.sampled_from([0, 16, 128])},
)
roles = st.sampled_from([CLIENT, SERVER])


def send_script(conn: Conn, script: list[Any]) -> tuple[bytes, list[Any]]:
    """Send ``script`` from ``conn``; return the bytes and what a receiver must collate."""
    out, expected = bytearray(), []
    for kind, *rest in script:
        if kind == "msg":
            (fragments,) = rest
            cls = TextMessage if isinstance(fragments[0][0], str) else BytesMessage
            for index, (fragment, ping) in enumerate(fragments):
                last = index == len(fragments) - 1
                out += conn.send(cls(data=fragment, message_finished=last))
                if last:
                    expected.append(("msg", fragments[0][0][:0].join(f for f, _ in fragments)))
                if ping:  # inside a fragmented message unless after the last fragment
                    out += conn.send(Ping(payload=b"in-%d" % index))
                    expected.append(("ping", b"in-%d" % index))
        elif kind == "close":
            code, reason = rest
            out += conn.send(CloseConnection(code=code, reason=reason))
            expected.append(("close", int(code), _truncated(reason)))
        else:
            (payload,) = rest
            out += conn.send(Ping(payload) if kind == "ping" else Pong(payload))
            expected.append((kind, payload))
    return bytes(out), expected


def _truncated(reason: str) -> str:
    data = reason.encode()[:123]
    return data.decode("utf-8", errors="ignore")


# -- receiving: valid streams ------------------------------------------------------------


@PROFILE
@given(roles, ext_kinds, deflate_configs, scripts, chunkings, st.booleans())
def test_receive_matches_wsproto(
    role: ConnectionType,
    kind: str,
    config: dict[str, Any],
    script: list[Any],
    how: str | list[int],
    we_encode: bool,
) -> None:
    sender = make(FastConnection if we_encode else Connection, OTHER[role], kind, **config)
    wire, expected = send_script(sender, script)
    theirs, ours = receivers(role, kind, **config)
    log = feed_both(theirs, ours, split(wire, how))
    if kind != "wsproto":  # wsproto's own deflate mishandles pings inside a message
        assert collate(log) == expected
    feed_both(theirs, ours, [None])


@PROFILE
@given(roles, scripts, scripts, chunkings)
def test_receive_two_streams_and_trailing_data(
    role: ConnectionType, first: list[Any], second: list[Any], how: str | list[int]
) -> None:
    """Bytes given as ``trailing_data`` to the constructor are parsed like fed ones."""
    sender = Connection(OTHER[role])
    head, _ = send_script(sender, [item for item in first if item[0] != "close"])
    tail, _ = send_script(sender, second)
    theirs, ours = Connection(role, trailing_data=head), FastConnection(role, trailing_data=head)
    feed_both(theirs, ours, [b"", *split(tail, how)])


@pytest.mark.parametrize("role", [CLIENT, SERVER])
@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 2**20 + 3])
@pytest.mark.parametrize("how", ["whole", "chunks", "odd"])
def test_large_frames_are_emitted_as_they_arrive(role: ConnectionType, size: int, how: str) -> None:
    sender = Connection(OTHER[role])
    data = os.urandom(size)
    wire = sender.send(BytesMessage(data=data)) + sender.send(TextMessage(data="é" * size))
    sizes = {"whole": [], "chunks": [65536] * 100, "odd": [3, 1, 7, 65521, 99999] * 10}[how]
    theirs, ours = receivers(role)
    log = feed_both(theirs, ours, split(wire, sizes))
    assert collate(log) == [("msg", data), ("msg", "é" * size)]
    if how == "chunks" and size > 65536:
        assert len(log) > 2  # partial frames, never the whole frame buffered first


# -- receiving: malformed streams ------------------------------------------------------

_BAD_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xe2\x82"]
_codes = st.sampled_from([0, 999, 1000, 1004, 1005, 1006, 1012, 1014, 1015, 1016, 2999, 3000])
_close_payloads = st.one_of(
    st.just(b""),
    st.binary(min_size=1, max_size=1),
    st.tuples(_codes | st.integers(0, 65535), st.text(_chars, max_size=20)).map(
        lambda t: struct.pack("!H", t[0]) + t[1].encode()
    ),
    st.tuples(_codes, st.sampled_from(_BAD_UTF8)).map(lambda t: struct.pack("!H", t[0]) + t[1]),
    st.binary(min_size=126, max_size=130),
)
_text_payloads = st.one_of(
    st.text(_chars, max_size=20).map(str.encode),
    st.tuples(
        st.text(_chars, max_size=8), st.sampled_from(_BAD_UTF8), st.text(_chars, max_size=8)
    ).map(lambda t: t[0].encode() + t[1] + t[2].encode()),
    st.text(_chars, min_size=1, max_size=6).map(lambda s: s.encode()[:-1]),  # cut a character
)


@st.composite
def raw_frames(draw: st.DrawFn, masked: bool) -> bytes:
    """One frame, often broken: any opcode, RSV bits, mask, lengths and payloads."""
    opcode = draw(st.sampled_from([0, 1, 2, 8, 9, 10]) | st.integers(0, 15))
    payload = draw(
        {8: _close_payloads, 1: _text_payloads, 0: _text_payloads | _binaries}.get(
            opcode, st.binary(max_size=40) | st.binary(min_size=120, max_size=200)
        )
    )
    rsv = draw(st.sampled_from([0] * 8 + [1, 2, 4, 7]))
    key = draw(st.binary(min_size=4, max_size=4))
    use_key = draw(st.sampled_from([masked] * 9 + [not masked]))
    form = draw(st.sampled_from(["min"] * 8 + ["16", "64", "msb"]))
    fin = draw(st.sampled_from([True, True, False]))
    return build_frame(opcode, payload, fin=fin, rsv=rsv, key=key if use_key else None, form=form)


@PROFILE
@given(roles, ext_kinds, st.data(), chunkings)
def test_malformed_frames_match_wsproto(
    role: ConnectionType, kind: str, data: st.DataObject, how: str | list[int]
) -> None:
    frames = data.draw(st.lists(raw_frames(role is SERVER), min_size=1, max_size=6))
    theirs, ours = receivers(role, kind)
    feed_both(theirs, ours, [*split(b"".join(frames), how), None])


@PROFILE
@given(roles, ext_kinds, st.binary(max_size=200), chunkings)
def test_random_bytes_match_wsproto(
    role: ConnectionType, kind: str, data: bytes, how: str | list[int]
) -> None:
    theirs, ours = receivers(role, kind)
    feed_both(theirs, ours, split(data, how))


@PROFILE
@given(roles, scripts, st.data(), chunkings)
def test_bad_frame_after_valid_ones_matches_wsproto(
    role: ConnectionType, script: list[Any], data: st.DataObject, how: str | list[int]
) -> None:
    """A broken frame in the middle of a conversation (fragmented message in progress...)."""
    wire, _ = send_script(Connection(OTHER[role]), [i for i in script if i[0] != "close"])
    cut = data.draw(st.integers(0, len(wire)))
    bad = data.draw(raw_frames(role is SERVER))
    theirs, ours = receivers(role)
    feed_both(theirs, ours, split(wire[:cut] + bad + wire[cut:], how))


def _frames(*specs: tuple[Any, ...]) -> Callable[[bytes | None], bytes]:
    """Frames to build later with a masking key (or none): (opcode, payload, options)."""
    return lambda key: b"".join(build_frame(op, data, key=key, **kw) for op, data, kw in specs)


KNOWN_BAD = {
    "reserved-opcode": _frames((0x3, b"", {})),
    "reserved-control-opcode": _frames((0xB, b"x", {})),
    "rsv1-without-extension": _frames((0x1, b"x", {"rsv": 4})),
    "rsv3-without-extension": _frames((0x2, b"x", {"rsv": 1})),
    "rsv-after-an-empty-frame": _frames((0x1, b"", {}), (0x2, b"x", {"rsv": 2})),
    "fragmented-ping": _frames((0x9, b"x", {"fin": False})),
    "ping-126": _frames((0x9, b"x" * 126, {})),
    "ping-125": _frames((0x9, b"x" * 125, {})),
    "close-126": _frames((0x8, b"\x03\xe8" + b"x" * 124, {})),
    "continuation-first": _frames((0x0, b"x", {})),
    "new-message-inside-one": _frames((0x1, b"a", {"fin": False}), (0x1, b"b", {})),
    "binary-inside-text": _frames((0x1, b"a", {"fin": False}), (0x2, b"b", {})),
    "ping-inside-message": _frames((0x1, b"a", {"fin": False}), (0x9, b"", {}), (0x0, b"b", {})),
    "empty-frames": _frames((0x1, b"", {"fin": False}), (0x0, b"", {}), (0x2, b"", {})),
    "16-bit-length-125": _frames((0x2, b"x" * 125, {"form": "16"})),
    "16-bit-length-126": _frames((0x2, b"x" * 126, {"form": "16"})),
    "64-bit-length-65535": _frames((0x2, b"x" * 65535, {"form": "64"})),
    "64-bit-length-65536": _frames((0x2, b"x" * 65536, {"form": "64"})),
    "64-bit-length-msb": _frames((0x2, b"x", {"form": "msb"})),
    "64-bit-length-msb-then-40k": _frames((0x2, b"x" * 40000, {"form": "msb"})),
    "invalid-utf8": _frames((0x1, b"ok\xff", {})),
    "invalid-utf8-16-bit": _frames((0x1, b"x" * 200 + b"\xff", {})),
    "cut-character-then-invalid": _frames((0x1, b"\xe2", {"fin": False}), (0x0, b"\x82", {})),
    "character-split-across-frames": _frames(
        (0x1, b"\xe2\x82", {"fin": False}), (0x0, b"\xac", {})
    ),
    "cut-character-at-end": _frames((0x1, b"\xe2\x82", {})),
    "close-1-byte": _frames((0x8, b"\x03", {})),
    "close-invalid-utf8-reason": _frames((0x8, struct.pack("!H", 1000) + b"\xff", {})),
    "close-1005": _frames((0x8, struct.pack("!H", 1005), {})),
    "close-1014": _frames((0x8, struct.pack("!H", 1014), {})),
    "data-after-close": _frames((0x8, struct.pack("!H", 1000), {}), (0x1, b"after", {})),
}


@pytest.mark.parametrize("role", [CLIENT, SERVER])
@pytest.mark.parametrize("name", KNOWN_BAD)
@pytest.mark.parametrize("masking", ["right", "wrong"])
@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_known_bad_frames(role: ConnectionType, name: str, masking: str, how: str) -> None:
    masked = (role is SERVER) is (masking == "right")
    wire = KNOWN_BAD[name](b"abcd" if masked else None)
    if how == "bytes" and len(wire) > 10_000:
        how = "whole"  # wsproto takes seconds to eat 64 KiB one byte at a time
    theirs, ours = receivers(role)
    log = feed_both(theirs, ours, split(wire, how))
    assert log  # every case ends in an event (most with a close code)
    more = build_frame(0x1, b"more", key=b"kkkk" if role is SERVER else None)
    feed_both(theirs, ours, [more, None])


@pytest.mark.parametrize("role", [CLIENT, SERVER])
def test_received_close_codes_match_wsproto(role: ConnectionType) -> None:
    """Every code below 5100, then every 37th: same code (enum or int) or same error."""
    key = b"\x01\x02\x03\x04" if role is SERVER else None
    codes = [*range(5100), *range(5100, 65536, 37), 65535]
    for code in codes:
        theirs, ours = receivers(role)
        wire = build_frame(0x8, struct.pack("!H", code) + b"bye", key=key)
        events = [[describe(e) for e in c.events()] for c in _fed(theirs, ours, wire)]
        assert events[0] == events[1], code
        assert theirs.state is ours.state


def _fed(theirs: Conn, ours: Conn, data: bytes) -> tuple[Conn, Conn]:
    theirs.receive_data(data)
    ours.receive_data(data)
    return theirs, ours


# -- extension hooks -----------------------------------------------------------------


class Spy(Extension):
    """Records every hook call; claims RSV1; fails on some inputs to test error paths."""

    name = "x-spy"

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return True

    def frame_inbound_header(
        self, proto: Any, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        self.calls.append(("header", proto.client, opcode, rsv, payload_length))
        if payload_length == 13:
            return CloseReason.MESSAGE_TOO_BIG
        return RsvBits(True, False, False)

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        self.calls.append(("data", proto.client, type(data), data))
        return CloseReason.POLICY_VIOLATION if b"!" in data else data.swapcase()

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        self.calls.append(("complete", proto.client, fin))
        return b"+" if fin else None

    def frame_outbound(
        self, proto: Any, opcode: Opcode, rsv: RsvBits, data: bytes, fin: bool
    ) -> tuple[RsvBits, bytes]:
        self.calls.append(("out", proto.client, opcode, rsv, type(data), data, fin))
        return RsvBits(opcode == Opcode.TEXT, False, fin), data.swapcase()


def _without_retries(calls: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """wsproto repeats a header hook when a header's masking key is incomplete; drop those."""
    out: list[tuple[Any, ...]] = []
    for call in calls:
        if not (call[0] == "header" and out and out[-1] == call):
            out.append(call)
    return out


@PROFILE
@given(roles, st.data(), chunkings)
def test_extension_hooks_called_as_wsproto_calls_them(
    role: ConnectionType, data: st.DataObject, how: str | list[int]
) -> None:
    frames = data.draw(st.lists(raw_frames(role is SERVER), min_size=1, max_size=6))
    spies = Spy(), Spy()
    theirs, ours = Connection(role, [spies[0]]), FastConnection(role, [spies[1]])
    feed_both(theirs, ours, split(b"".join(frames), how))
    assert _without_retries(spies[0].calls) == spies[1].calls


@pytest.mark.parametrize("role", [CLIENT, SERVER])
def test_header_hook_runs_once_per_frame(role: ConnectionType) -> None:
    """Where we differ: wsproto re-runs the header hook while the masking key arrives."""
    wire = Connection(OTHER[role]).send(TextMessage(data="hello"))
    spies = Spy(), Spy()
    theirs, ours = Connection(role, [spies[0]]), FastConnection(role, [spies[1]])
    feed_both(theirs, ours, split(wire, "bytes"))
    headers = [[c for c in spy.calls if c[0] == "header"] for spy in spies]
    assert len(headers[1]) == 1
    assert len(headers[0]) == (5 if role is SERVER else 1)  # again for each key byte


def test_bounded_deflate_size_is_counted_once() -> None:
    """Why it matters: BoundedDeflate counts uncompressed sizes in its header hook."""
    limit = 100
    client = Connection(CLIENT)
    wire = client.send(BytesMessage(data=b"a" * 60, message_finished=False))
    wire += client.send(BytesMessage(data=b"b" * 30))
    _, theirs_ext = negotiate("bounded", {"max_message_size": limit})
    _, ours_ext = negotiate("bounded", {"max_message_size": limit})
    theirs, ours = Connection(SERVER, theirs_ext), FastConnection(SERVER, ours_ext)
    logs = [
        [describe(e) for c in split(wire, "bytes") for e in _events(conn, c)]
        for conn in (theirs, ours)
    ]
    assert collate(logs[1]) == [("msg", b"a" * 60 + b"b" * 30)]
    assert collate(logs[0])[-1][:2] == ("close", 1009)  # wsproto: 60 + 30 + 30 > 100


def _events(conn: Conn, data: bytes) -> list[Event]:
    conn.receive_data(data)
    return list(conn.events())


# -- sending -------------------------------------------------------------------------

_send_events = st.one_of(
    st.builds(TextMessage, data=_texts, message_finished=st.booleans()),
    st.builds(BytesMessage, data=_binaries, message_finished=st.booleans()),
    st.builds(TextMessage, data=st.binary(max_size=5) | st.just(7), message_finished=st.booleans()),
    st.builds(Ping, payload=_control | st.binary(min_size=126, max_size=130)),
    st.builds(Pong, payload=_control),
    st.builds(
        CloseConnection,
        code=_codes | _sendable_codes | st.sampled_from(list(CloseReason)) | st.integers(-1, 70000),
        reason=st.none() | st.text(_chars, max_size=70),
    ),
)


def send_both(pair: tuple[Conn, Conn], event: Event) -> list[tuple[Any, ...]]:
    """Send ``event`` from both; assert the same outcome (client bytes compared unmasked)."""
    results = [outcome(c.send, event) for c in pair]
    if pair[0].client and results[0][0] == results[1][0] == "ok":
        assert results[0][1] != results[1][1]  # random keys (equal once in 2**32 frames)
        compared = [("ok", unmasked(r[1])) for r in results]
    else:
        compared = results
    assert compared[0] == compared[1], event
    assert pair[0].state is pair[1].state
    return results


@PROFILE
@given(roles, st.sampled_from(["none", "bounded"]), st.lists(_send_events, max_size=12))
def test_send_matches_wsproto(role: ConnectionType, kind: str, events: list[Event]) -> None:
    """Same bytes (unmasked), same errors, same states; a wsproto peer reads both alike."""
    pair = receivers(role, kind)
    peers = [make(Connection, OTHER[role], kind) for _ in pair]
    for event in events:
        results = send_both(pair, event)
        if results[0][0] == "ok" and all(p.state is ConnectionState.OPEN for p in peers):
            received = [
                [describe(e) for e in _events(p, r[1])] for p, r in zip(peers, results, strict=True)
            ]
            assert received[0] == received[1]


@PROFILE
@given(roles, st.lists(_send_events, max_size=12))
def test_send_hooks_called_as_wsproto_calls_them(role: ConnectionType, events: list[Event]) -> None:
    spies = Spy(), Spy()
    pair = Connection(role, [spies[0]]), FastConnection(role, [spies[1]])
    for event in events:
        send_both(pair, event)
    assert spies[0].calls == spies[1].calls


@PROFILE
@given(roles, ext_kinds, deflate_configs, scripts)
def test_sent_bytes_decode_in_wsproto(
    role: ConnectionType, kind: str, config: dict[str, Any], script: list[Any]
) -> None:
    """Our output, masked with random keys, parses back in wsproto to what was sent."""
    wire, expected = send_script(make(FastConnection, role, kind, **config), script)
    peer = make(Connection, OTHER[role], kind, **config)
    peer.receive_data(wire)
    received = collate([describe(e) for e in peer.events()])
    if kind != "wsproto":
        assert received == expected


@pytest.mark.parametrize("role", [CLIENT, SERVER])
def test_sent_close_codes_match_wsproto(role: ConnectionType) -> None:
    """Every code below 5100, then every 37th, each enum member, None; with reasons."""
    codes: list[Any] = [*range(-1, 5100), *range(5100, 70000, 37), *CloseReason, None]
    for code in codes:
        for reason in (None, "", "bye", "é" * 70):
            send_both(receivers(role), CloseConnection(code, reason))


@pytest.mark.parametrize("role", [CLIENT, SERVER])
@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_send_sizes_match_wsproto(role: ConnectionType, size: int) -> None:
    """The length encodings at their boundaries, for text, binary and fragments."""
    pair = receivers(role)
    for event in (
        TextMessage(data="t" * size),
        BytesMessage(data=bytearray(size)),
        BytesMessage(data=memoryview(b"m" * size), message_finished=False),
        BytesMessage(data=b"end"),
    ):
        send_both(pair, event)


@pytest.mark.parametrize("size", range(115, 131))
@pytest.mark.parametrize("char", ["a", "é", "€", "\U0001f600"])
def test_close_reason_truncation_matches_wsproto(size: int, char: str) -> None:
    reason = ("x" * size + char * 40)[: size + 5]
    pair = receivers(SERVER)
    assert pair[0].send(CloseConnection(1000, reason)) == pair[1].send(
        CloseConnection(1000, reason)
    )


# -- state machine ---------------------------------------------------------------------


_session_ops = st.lists(st.sampled_from(["feed", "events", "eof"]) | _send_events, max_size=30)


@PROFILE
@given(roles, scripts, chunkings, _session_ops)
def test_session_matches_wsproto(
    role: ConnectionType, script: list[Any], how: str | list[int], ops: list[Any]
) -> None:
    """Feeding (with or without reading events), sending and losing the connection."""
    wire, _ = send_script(Connection(OTHER[role]), script)
    chunks = split(wire, how)
    pair = receivers(role)
    for op in ops:
        if op == "feed" and chunks:
            results = [outcome(c.receive_data, chunks[0]) for c in pair]
            assert results[0] == results[1]
            chunks = chunks[1:]
        elif op == "eof":
            for conn in pair:
                conn.receive_data(None)
        elif op == "events":
            events = [[(describe(e), c.state) for e in c.events()] for c in pair]
            assert events[0] == events[1]
        elif op != "feed":
            send_both(pair, op)
        assert pair[0].state is pair[1].state
    feed_both(*pair, chunks)


@pytest.mark.parametrize("role", [CLIENT, SERVER])
@pytest.mark.parametrize("we_close_first", [True, False])
def test_close_handshake_states(role: ConnectionType, we_close_first: bool) -> None:
    close = Connection(OTHER[role]).send(CloseConnection(1000, "done"))
    ours = FastConnection(role)
    states = []
    for step in ("send", "receive") if we_close_first else ("receive", "send"):
        if step == "send":
            ours.send(CloseConnection(1000))
        else:
            assert [describe(e) for e in _events(ours, close)] == [
                describe(CloseConnection(CloseReason.NORMAL_CLOSURE, "done"))
            ]
        states.append(ours.state.name)
    first = "LOCAL_CLOSING" if we_close_first else "REMOTE_CLOSING"
    assert states == [first, "CLOSED"]


# -- unmasking -----------------------------------------------------------------------


@PROFILE
@given(st.binary(max_size=2000), st.binary(min_size=4, max_size=4))
def test_xor_matches_naive(data: bytes, key: bytes) -> None:
    assert bytes(_xor(data, key)) == xor_naive(data, key)


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 511, 512, 513, 65536, 2**20 + 1])
def test_xor_sizes(size: int) -> None:
    data, key = os.urandom(size), os.urandom(3) + b"\x00"  # a zero key byte is skipped
    assert bytes(_xor(_xor(data, key), key)) == data
    assert bytes(_xor(data[:600], key)) == xor_naive(data[:600], key)


# -- websockets: an independent implementation ----------------------------------------


def ws_peer(our_role: ConnectionType) -> ClientProtocol | ServerProtocol:
    if our_role is SERVER:
        return ClientProtocol(parse_uri("ws://example.com/"), state=State.OPEN, max_size=None)
    return ServerProtocol(state=State.OPEN, max_size=None)


def ws_collate(events: Sequence[object]) -> list[Any]:
    out: list[Any] = []
    parts: list[bytes] = []
    text = False
    for frame in events:
        assert isinstance(frame, WsFrame)
        if frame.opcode in (WsOpcode.PING, WsOpcode.PONG):
            out.append((frame.opcode.name.lower(), frame.data))
        elif frame.opcode is WsOpcode.CLOSE:
            continue
        else:
            if frame.opcode is not WsOpcode.CONT:
                text, parts = frame.opcode is WsOpcode.TEXT, []
            parts.append(bytes(frame.data))
            if frame.fin:
                whole = b"".join(parts)
                out.append(("msg", whole.decode() if text else whole))
    return out


def ws_send_script(peer: ClientProtocol | ServerProtocol, script: list[Any]) -> list[Any]:
    expected: list[Any] = []
    for kind, *rest in script:
        if kind == "msg":
            (fragments,) = rest
            is_text = isinstance(fragments[0][0], str)
            for index, (fragment, ping) in enumerate(fragments):
                payload = fragment.encode() if is_text else fragment
                fin = index == len(fragments) - 1
                if index:
                    peer.send_continuation(payload, fin=fin)
                elif is_text:
                    peer.send_text(payload, fin=fin)
                else:
                    peer.send_binary(payload, fin=fin)
                if fin:
                    expected.append(("msg", fragments[0][0][:0].join(f for f, _ in fragments)))
                if ping:
                    peer.send_ping(b"in-%d" % index)
                    expected.append(("ping", b"in-%d" % index))
        elif kind == "close":
            code, reason = rest
            if code == 1005:
                peer.send_close()
                expected.append(("close", 1005, ""))
            else:
                peer.send_close(code, reason)
                expected.append(("close", code, reason))
        else:
            (payload,) = rest
            (peer.send_ping if kind == "ping" else peer.send_pong)(payload)
            expected.append((kind, payload))
    return expected


_ws_close = st.one_of(
    st.tuples(st.just("close"), _sendable_codes | st.integers(3000, 4999), st.text(max_size=30)),
    st.just(("close", CloseReason.NO_STATUS_RCVD, "")),
)
ws_scripts = st.tuples(st.lists(_item, max_size=6), st.none() | _ws_close).map(
    lambda t: t[0] + ([t[1]] if t[1] else [])
)


@FEW
@given(roles, ws_scripts, chunkings)
def test_websockets_to_us(role: ConnectionType, script: list[Any], how: str | list[int]) -> None:
    peer = ws_peer(role)
    expected = ws_send_script(peer, script)
    ours = FastConnection(role)
    log = []
    for chunk in split(b"".join(peer.data_to_send()), how):
        ours.receive_data(chunk)
        log += [describe(e) for e in ours.events()]
    assert collate(log) == expected


@FEW
@given(roles, ws_scripts)
def test_us_to_websockets(role: ConnectionType, script: list[Any]) -> None:
    peer = ws_peer(role)
    wire, expected = send_script(FastConnection(role), script)
    peer.receive_data(wire)
    assert ws_collate(peer.events_received()) == [e for e in expected if e[0] != "close"]
    if script and script[-1][0] == "close":
        assert peer.close_rcvd is not None
        assert (peer.close_rcvd.code, peer.close_rcvd.reason) == expected[-1][1:]


def ws_deflate_pair(
    role: ConnectionType,
) -> tuple[ClientProtocol | ServerProtocol, FastConnection]:
    """A websockets peer and our ``role`` after a real handshake agreeing on deflate."""
    ours = BoundedDeflate(threshold=0)
    if role is SERVER:
        peer: ClientProtocol | ServerProtocol = ClientProtocol(
            parse_uri("ws://example.com/"),
            extensions=[ClientPerMessageDeflateFactory()],
            max_size=None,
        )
        peer.send_request(peer.connect())
        server = H11Handshake(SERVER)
        server.receive_data(b"".join(peer.data_to_send()))
        assert isinstance(next(server.events()), Request)
        peer.receive_data(server.send(AcceptConnection(extensions=[ours])))
    else:
        peer = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()], max_size=None)
        client = H11Handshake(CLIENT)
        peer.receive_data(client.send(Request(host="h", target="/", extensions=[ours])))
        (request,) = peer.events_received()
        assert isinstance(request, WsRequest)
        peer.send_response(peer.accept(request))
        client.receive_data(b"".join(peer.data_to_send()))
        assert isinstance(next(client.events()), AcceptConnection)
    peer.events_received()
    assert peer.state is State.OPEN
    assert ours.enabled()
    return peer, FastConnection(role, extensions=[ours])


@FEW
@given(roles, ws_scripts, ws_scripts, chunkings)
def test_websockets_with_deflate(
    role: ConnectionType, to_us: list[Any], to_them: list[Any], how: str | list[int]
) -> None:
    peer, ours = ws_deflate_pair(role)
    expected = ws_send_script(peer, [item for item in to_us if item[0] != "close"])
    log = []
    for chunk in split(b"".join(peer.data_to_send()), how):
        log += [describe(e) for e in _events(ours, chunk)]
    assert collate(log) == expected
    wire, expected = send_script(ours, to_them)
    peer.receive_data(wire)
    assert ws_collate(peer.events_received()) == [e for e in expected if e[0] != "close"]
