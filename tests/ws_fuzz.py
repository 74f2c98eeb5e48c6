"""Fuzzing helpers for the WebSocket property tests: frames, an oracle, strategies, peers.

The oracle (:func:`predict`) is a small RFC 6455 receiver written from the
RFC, independent of wsproto: given every byte a peer sends, it says which
messages must be delivered (or echoed), which pings must be answered, and
which close codes the receiver may send (none: it must wait for more bytes).
Where the RFC leaves the order of two errors open, it accepts both codes.
"""

from __future__ import annotations

import codecs
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
from anyio.abc import ByteStream
from hypothesis import strategies as st

# -- frames ---------------------------------------------------------------------

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
KNOWN_OPCODES = frozenset({CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG})

#: Close codes RFC 6455 section 7.4.1 defines for use on the wire.
RFC_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})
#: Registered with IANA after RFC 6455 (restart, try again later, bad gateway):
#: a receiver may accept them (and echo them) or fail with 1002.
LATER_CLOSE_CODES = frozenset({1012, 1013, 1014})

KEY = b"\x37\xfa\x21\x3d"


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = KEY,
    length: int | None = None,
    form: int | None = None,
) -> bytes:
    """One frame, built by hand so that it can break every rule.

    ``mask=None`` sends it unmasked. ``length`` overrides the declared payload
    length (the payload is sent as given). ``form`` forces the length encoding:
    7, 16 or 64 bits (a longer form than needed is not minimal: 1002).
    """
    n = len(payload) if length is None else length
    if form is None:
        form = 7 if n < 126 else 16 if n < 65536 else 64
    mask_bit = 0x80 if mask is not None else 0
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    if form == 7:
        head += bytes([mask_bit | n])
    elif form == 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + apply_mask(payload, mask)


def apply_mask(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason


@dataclass(frozen=True)
class Frame:
    """A frame as read from the peer under test."""

    opcode: int
    payload: bytes
    fin: bool
    rsv: int
    masked: bool

    @property
    def close_code(self) -> int:
        """The code of a close frame (1005 when it has no payload)."""
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else 1005


class FrameReader:
    """Reads whole frames from a stream; ``None`` once the peer closed or reset it."""

    def __init__(self, stream: ByteStream, buffered: bytes = b"") -> None:
        self._stream = stream
        self._data = bytearray(buffered)
        self.eof = False

    async def next(self) -> Frame | None:
        while True:
            parsed = pop_frame(self._data)
            if parsed is not None:
                return parsed
            if self.eof:
                assert not self._data, f"stream ended inside a frame: {bytes(self._data)!r}"
                return None
            try:
                self._data += await self._stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                self.eof = True


def pop_frame(data: bytearray) -> Frame | None:
    """Remove and return the first whole frame in ``data`` (None if incomplete)."""
    if len(data) < 2:
        return None
    first, n, offset = data[0], data[1] & 0x7F, 2
    if n == 126:
        if len(data) < 4:
            return None
        (n,), offset = struct.unpack("!H", data[2:4]), 4
    elif n == 127:
        if len(data) < 10:
            return None
        (n,), offset = struct.unpack("!Q", data[2:10]), 10
    key = bytes(data[offset : offset + 4]) if data[1] & 0x80 else None
    offset += 0 if key is None else 4
    if len(data) < offset + n:
        return None
    payload = bytes(data[offset : offset + n])
    del data[: offset + n]
    return Frame(
        opcode=first & 0x0F,
        payload=payload if key is None else apply_mask(payload, key),
        fin=bool(first & 0x80),
        rsv=first & 0x70,
        masked=key is not None,
    )


# -- the oracle -------------------------------------------------------------------


@dataclass
class Outcome:
    """What a receiver must do with some bytes (see :func:`predict`)."""

    messages: list[str | bytes] = field(default_factory=list)
    pongs: list[bytes] = field(default_factory=list)
    #: Close codes the receiver may send; empty: it must wait for more bytes.
    codes: frozenset[int] = frozenset()
    #: When waiting: every byte was used and the next byte starts a frame.
    idle: bool = False


@dataclass(frozen=True)
class _Header:
    fin: bool
    opcode: int
    length: int
    key: bytes | None


def _fail(*codes: int) -> frozenset[int]:
    return frozenset(codes)


def _parse_header(
    data: bytes, pos: int, *, masked: bool
) -> tuple[_Header, int] | frozenset[int] | None:
    """Section 5.2: the header at ``pos`` and where its payload starts; codes; or None (more).

    The checks run in the order the bytes arrive (the first two bytes, then
    the extended length, then the masking key), as a streaming receiver
    must: an error is found as soon as the bytes that show it are there.
    """
    if len(data) - pos < 2:
        return None
    b0, b1 = data[pos], data[pos + 1]
    fin, rsv, opcode, n = bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F, b1 & 0x7F
    if opcode not in KNOWN_OPCODES:
        return _fail(1002)  # 5.2: reserved opcode
    if opcode >= CLOSE and (not fin or n > 125):
        return _fail(1002)  # 5.5: control frames are not fragmented, payload <= 125
    pos += 2
    if n == 126:
        if len(data) - pos < 2:
            return None
        (n,) = struct.unpack("!H", data[pos : pos + 2])
        pos += 2
        if n < 126:
            return _fail(1002)  # 5.2: the minimal number of bytes MUST be used
    elif n == 127:
        if len(data) - pos < 8:
            return None
        (n,) = struct.unpack("!Q", data[pos : pos + 8])
        pos += 8
        if n < 65536 or n >> 63:
            return _fail(1002)  # 5.2: minimal encoding; the most significant bit MUST be 0
    if rsv:
        return _fail(1002)  # 5.2: RSV bits without a negotiated extension
    if bool(b1 & 0x80) != masked:
        return _fail(1002)  # 5.1: clients mask, servers do not
    key = None
    if masked:
        if len(data) - pos < 4:
            return None
        key, pos = bytes(data[pos : pos + 4]), pos + 4
    return _Header(fin, opcode, n, key), pos


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def close_reply_codes(payload: bytes) -> frozenset[int]:
    """Section 5.5.1 and 7.4: the codes a receiver may answer a close frame with."""
    if not payload:
        return _fail(1005)  # no status: the reply has no payload either
    if len(payload) == 1:
        return _fail(1002)
    (code,) = struct.unpack("!H", payload[:2])
    if code in RFC_CLOSE_CODES or 3000 <= code <= 4999:
        answers = {code}
    elif code in LATER_CLOSE_CODES:
        answers = {code, 1002}
    else:
        answers = {1002}  # < 1000, 1004-1006, 1015, unassigned 1016-2999, >= 5000
    if not _is_utf8(payload[2:]):
        answers = (answers - {code}) | {1007}  # 8.1: the reason is UTF-8
    return frozenset(answers)


class _Message:
    """A (possibly fragmented) data message being received."""

    def __init__(self, opcode: int) -> None:
        self.text = opcode == TEXT
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._text: list[str] = []
        self._bytes: list[bytes] = []
        self._size = 0  # characters for text, bytes for binary (max_message_size's unit)

    def feed(self, data: bytes, *, final: bool, max_size: int | None) -> frozenset[int]:
        """Add one frame's payload (or what arrived of it); codes if that fails the connection.

        Within one frame a receiver may check size and UTF-8 in whatever
        reads the bytes came in, so when the size is exceeded before an
        invalid byte of the same frame, both 1009 and 1007 are right.
        """
        crossed = invalid = False
        units = [data[i : i + 1] for i in range(len(data))] or [b""]
        for i, unit in enumerate(units):
            last = final and i == len(units) - 1
            if self.text:
                try:
                    piece = self._decoder.decode(unit, last)
                except UnicodeDecodeError:
                    invalid = True
                    break
                self._text.append(piece)
                self._size += len(piece)
            else:
                self._bytes.append(unit)
                self._size += len(unit)
            crossed = crossed or (max_size is not None and self._size > max_size)
        if invalid:
            return _fail(1007, 1009) if crossed else _fail(1007)
        return _fail(1009) if crossed else frozenset()

    def value(self) -> str | bytes:
        return "".join(self._text) if self.text else b"".join(self._bytes)


def predict(data: bytes, *, masked: bool, max_size: int | None) -> Outcome:
    """What a receiver must do with ``data``: masked frames for a server, unmasked for a client.

    No extension is negotiated. Data frames are used as their bytes arrive
    (a message over ``max_size`` fails with 1009 once its excess arrived,
    whatever length the header declared); control frames once complete.
    """
    out = Outcome()
    pos = 0
    message: _Message | None = None
    while True:
        parsed = _parse_header(data, pos, masked=masked)
        if parsed is None:
            out.idle = pos == len(data)
            return out
        if isinstance(parsed, frozenset):
            out.codes = parsed
            return out
        header, pos = parsed
        payload = data[pos : pos + header.length]
        pos += len(payload)
        if header.key is not None:
            payload = apply_mask(payload, header.key)
        complete = len(payload) == header.length
        if header.opcode >= CLOSE:
            if not complete:
                return out
            if header.opcode == PING:
                out.pongs.append(payload)
            elif header.opcode == CLOSE:
                out.codes = close_reply_codes(payload)
                return out
            continue
        if header.length and not payload:
            return out  # nothing of this frame's payload yet
        if (header.opcode == CONTINUATION) == (message is None):
            out.codes = _fail(1002)  # 5.4: continuation without a start, or a new start inside
            return out
        if message is None:
            message = _Message(header.opcode)
        codes = message.feed(payload, final=complete and header.fin, max_size=max_size)
        if codes:
            out.codes = codes
            return out
        if not complete:
            return out
        if header.fin:
            out.messages.append(message.value())
            message = None


# -- strategies: frames -----------------------------------------------------------------

#: Byte strings that are not UTF-8: bad start bytes, overlong, surrogate, too big, cut short.
INVALID_UTF8 = (b"\xff", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82")
#: Close codes worth trying besides random ones.
INTERESTING_CODES = (
    *sorted(RFC_CLOSE_CODES),
    *sorted(LATER_CLOSE_CODES),
    0,
    999,
    1004,
    1005,
    1006,
    1015,
    1016,
    2999,
    3000,
    4999,
    5000,
    65535,
)


@st.composite
def text_bytes(draw: st.DrawFn, *, limit: int) -> bytes:
    """UTF-8 text, sometimes padded to about ``limit`` characters (1- or 2-byte ones)."""
    text = draw(st.text(max_size=20))
    if draw(st.integers(0, 3)) == 0:
        target = limit + draw(st.integers(-2, 2))
        text += draw(st.sampled_from("aé")) * max(0, target - len(text))
    return text.encode()


@st.composite
def binary_bytes(draw: st.DrawFn, *, limit: int) -> bytes:
    data = draw(st.binary(max_size=40))
    if draw(st.integers(0, 3)) == 0:
        data += b"\x00" * max(0, limit + draw(st.integers(-2, 2)) - len(data))
    return data


def split_points(draw: st.DrawFn, size: int) -> list[int]:
    cuts = draw(st.lists(st.integers(0, size), max_size=4))
    return [0, *sorted(cuts), size]


@st.composite
def control_frame(draw: st.DrawFn, *, mask: bytes | None) -> bytes:
    """A valid ping or pong."""
    opcode = draw(st.sampled_from([PING, PONG]))
    return frame(opcode, draw(st.binary(max_size=125)), mask=mask)


@st.composite
def close_frame(draw: st.DrawFn, *, mask: bytes | None) -> bytes:
    """A close frame: valid or invalid code, UTF-8 or not, empty, or one byte."""
    shape = draw(st.sampled_from(["code", "code", "empty", "one byte"]))
    if shape == "empty":
        return frame(CLOSE, b"", mask=mask)
    if shape == "one byte":
        return frame(CLOSE, draw(st.binary(min_size=1, max_size=1)), mask=mask)
    code = draw(st.sampled_from(INTERESTING_CODES) | st.integers(0, 65535))
    reason = draw(st.text(max_size=10)).encode()[:100]
    if draw(st.integers(0, 4)) == 0:
        reason += draw(st.sampled_from(INVALID_UTF8))
    return frame(CLOSE, close_payload(code, reason), mask=mask)


@st.composite
def data_message(draw: st.DrawFn, *, mask: bytes | None, limit: int) -> bytes:
    """A message, fragmented at random byte offsets (even inside a character).

    Valid pings and pongs may come between the fragments; sometimes one
    fragment carries bytes that are not UTF-8.
    """
    text = draw(st.booleans())
    raw = draw(text_bytes(limit=limit) if text else binary_bytes(limit=limit))
    if text and draw(st.integers(0, 5)) == 0:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from(INVALID_UTF8)) + raw[at:]
    cuts = split_points(draw, len(raw))
    out = b""
    for i in range(len(cuts) - 1):
        if i and draw(st.integers(0, 3)) == 0:
            out += draw(control_frame(mask=mask))
        opcode = (TEXT if text else BINARY) if i == 0 else CONTINUATION
        out += frame(opcode, raw[cuts[i] : cuts[i + 1]], fin=i == len(cuts) - 2, mask=mask)
    return out


@st.composite
def odd_frame(draw: st.DrawFn, *, mask: bytes | None, limit: int) -> bytes:
    """A frame with every field drawn on its own: most break some rule."""
    opcode = draw(
        st.sampled_from([TEXT, BINARY, CONTINUATION, PING, PONG, CLOSE]) | st.integers(0, 15)
    )
    payload = draw(st.binary(max_size=200) | text_bytes(limit=limit))
    return frame(
        opcode,
        payload,
        fin=draw(st.booleans()),
        rsv=draw(st.sampled_from([0, 0, 0x40, 0x20, 0x10, 0x70])),
        mask=mask if draw(st.integers(0, 4)) else (None if mask else KEY),
        form=draw(st.sampled_from([None, None, 7, 16, 64])) if len(payload) < 126 else None,
    )


@st.composite
def huge_frame(draw: st.DrawFn, *, mask: bytes | None, limit: int) -> bytes:
    """A header declaring a huge length (up to 2**64 - 1), then ``limit + 1`` bytes of it."""
    opcode = draw(st.sampled_from([BINARY, TEXT, CONTINUATION, PING]))
    length = draw(
        st.sampled_from([2**62, 2**63 - 1, 2**63, 2**64 - 1]) | st.integers(65536, 2**64 - 1)
    )
    return frame(opcode, b"a" * (limit + 1), fin=draw(st.booleans()), mask=mask, length=length)


@st.composite
def frame_sequences(draw: st.DrawFn, *, mask: bytes | None, limit: int) -> bytes:
    """What a peer might send after the handshake: valid messages and control frames,
    often one odd frame or close frame among them, sometimes a huge frame at the end."""
    message = data_message(mask=mask, limit=limit)
    valid = st.one_of(message, message, message, control_frame(mask=mask))
    parts = draw(st.lists(valid, max_size=5))
    if draw(st.booleans()):
        odd = draw(st.one_of(odd_frame(mask=mask, limit=limit), close_frame(mask=mask)))
        parts.insert(draw(st.integers(0, len(parts))), odd)
    data = b"".join(parts)
    if draw(st.integers(0, 7)) == 0:
        data += draw(huge_frame(mask=mask, limit=limit))
    return data


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """``base`` with a few bytes flipped, dropped or inserted: near-valid input."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "drop", "insert"]))
        if action == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "drop":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def after_handshake_bytes(*, mask: bytes | None, limit: int) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, structured frames, and structured frames slightly damaged."""
    frames = frame_sequences(mask=mask, limit=limit)
    return st.one_of(st.binary(max_size=300), frames, frames, frames, mutated(frames))


# -- strategies: HTTP heads ---------------------------------------------------------------

#: Replaced by the right Sec-WebSocket-Accept value when a raw server sends a response.
ACCEPT = b"\x00ACCEPT\x00"
#: Fixed key: the server's answer to it is ``accept_token(WS_KEY)``.
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
HEAD_LIMIT = 16384  # HTTPLimits.max_header_bytes

_latin1 = st.text(st.characters(max_codepoint=255), max_size=30).map(lambda t: t.encode("latin-1"))
_token = st.text(
    "abcdefghijklmnopqrstuvwxyz-ABCXYZ0123456789!#$%&'*+.^_`|~", min_size=1, max_size=12
)
_names = st.sampled_from(["Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version"])


def _line(name: str, value: bytes | str) -> bytes:
    return name.encode("latin-1") + b": " + (value if isinstance(value, bytes) else value.encode())


def upgrade_fields(key: str = WS_KEY) -> list[bytes]:
    return [
        b"Host: 127.0.0.1",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        _line("Sec-WebSocket-Key", key),
        b"Sec-WebSocket-Version: 13",
    ]


def _odd_values(name: str) -> st.SearchStrategy[bytes]:
    values = {
        "Upgrade": ["websocket", "WebSocket", "websocket2", "h2c", "", "websocket, h2c"],
        "Connection": ["Upgrade", "upgrade, keep-alive", "keep-alive", "close", ""],
        "Sec-WebSocket-Key": [
            WS_KEY,
            "",
            "x",
            "dGhlIHNhbXBsZSBub25jZQ",
            "AAAAAAAAAAAAAAAAAAAAAA==",
        ],
        "Sec-WebSocket-Version": ["13", "8", "13, 8", " 13", "", "0013"],
    }[name]
    return st.sampled_from(values).map(str.encode) | _latin1


@st.composite
def request_field(draw: st.DrawFn) -> bytes:
    """One header line of an upgrade request: valid, mangled or malformed."""
    kind = draw(st.integers(0, 6))
    if kind <= 1:
        return draw(st.sampled_from(upgrade_fields()))
    if kind == 2:
        name = draw(_names)
        return _line(name, draw(_odd_values(name)))
    if kind == 3:
        return draw(
            st.sampled_from(
                [
                    b"Content-Length: 0",
                    b"Content-Length: 5",
                    b"Content-Length: -1",
                    b"Content-Length: 1, 2",
                    b"Transfer-Encoding: chunked",
                    b"Transfer-Encoding: gzip",
                    b"Origin: http://evil.example",
                    b"Origin: null",
                    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
                    b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7",
                    b"Sec-WebSocket-Extensions: x-unknown, permessage-deflate; foo",
                    b"Sec-WebSocket-Protocol: chat, , superchat",
                    b"Expect: 100-continue",
                    b"Host: other.example",
                ]
            )
        )
    if kind == 4:
        return draw(
            st.sampled_from([b"NoColon", b" folded continuation", b"Name : v", b": no name"])
        )
    if kind == 5:
        return _line(draw(_token), draw(_latin1))
    return draw(_token).encode() + b": " + b"v" * draw(st.integers(0, 2 * HEAD_LIMIT))


@st.composite
def near_http_request(draw: st.DrawFn) -> bytes:
    """A request head that is often almost an upgrade request, plus maybe a body."""
    method = draw(st.sampled_from(["GET", "GET", "POST", "HEAD", "CONNECT", "get", "G-T"]) | _token)
    target = draw(st.sampled_from(["/", "/chat?x=1", "*", "http://127.0.0.1/", "/%ff", "/a b", ""]))
    version = draw(
        st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/0.9", "HTTP/10.1"])
        | st.sampled_from(["HTTP/1.2", "http/1.1", "HTTP/1", "HTTP/1.1 x", ""])
    )
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    lines = [f"{method} {target} {version}".encode(), *draw(st.lists(request_field(), max_size=9))]
    head = eol.join(lines) + eol
    if draw(st.integers(0, 4)):
        head += eol  # a complete head, most of the time
    return head + draw(st.binary(max_size=20))


@st.composite
def near_limit_request(draw: st.DrawFn) -> tuple[bytes, int]:
    """A valid upgrade request whose head is ``HEAD_LIMIT + delta`` bytes long."""
    delta = draw(st.integers(-40, 40))
    lines = [b"GET / HTTP/1.1", *upgrade_fields()]
    bare = len(b"\r\n".join([*lines, b"X-Filler: "]) + b"\r\n\r\n")
    lines.insert(
        draw(st.integers(1, len(lines))), b"X-Filler: " + b"f" * (HEAD_LIMIT + delta - bare)
    )
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    assert len(head) == HEAD_LIMIT + delta
    return head, delta


_REQUIRED_101 = (b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Accept: " + ACCEPT)
_EXTRA_101 = (
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
    b"Sec-WebSocket-Protocol: chat",
    b"Sec-WebSocket-Extensions: permessage-deflate",
    b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover",
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=8",
    b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99",
    b"Sec-WebSocket-Extensions: permessage-deflate; foo, permessage-deflate",
    b"Sec-WebSocket-Extensions: x-unknown",
    b"Upgrade: h2c",
    b"Connection: close",
    b"Content-Length: 0",
    b"Content-Length: 4",
    b"Content-Length: 100",
    b"Content-Length: x",
    b"Transfer-Encoding: chunked",
    b"NoColon",
)


@st.composite
def mangled_101(draw: st.DrawFn) -> bytes:
    """A 101 answer with a required field sometimes missing and odd fields added."""
    fields = [f for f in _REQUIRED_101 if draw(st.integers(0, 9))]  # each dropped 1 time in 10
    for extra in draw(st.lists(st.sampled_from(_EXTRA_101), max_size=2)):
        fields.insert(draw(st.integers(0, len(fields))), extra)
    head = b"\r\n".join([b"HTTP/1.1 101 Switching Protocols", *fields]) + b"\r\n\r\n"
    return head + draw(st.sampled_from([b"", b"", b"\x81\x02hi", b"\x88\x00", b"\xff"]))


@st.composite
def any_response(draw: st.DrawFn) -> bytes:
    """A response head with any status line and fields, complete or not, and a body."""
    version = draw(st.sampled_from(["HTTP/1.1"] * 6 + ["HTTP/1.0", "HTTP/2", "http/1.1", "ICY"]))
    status = draw(
        st.sampled_from([101, 100, 200, 204, 301, 400, 403, 426, 500, 0, 99, 1000])
        | st.integers(100, 999)
    )
    reason = draw(st.sampled_from(["Switching Protocols", "OK", ""]))
    junk = st.one_of(_token.map(str.encode), _token.map(str.encode), _latin1)
    fields = draw(st.lists(st.sampled_from(_REQUIRED_101 + _EXTRA_101) | junk.map(b"X: ".__add__)))
    lines = [f"{version} {status} {reason}".encode(), *fields]
    body = draw(st.sampled_from([b"", b"", b"body", b"4\r\nbody\r\n0\r\n\r\n", b"zz\r\n"]))
    end = b"\r\n\r\n" if draw(st.integers(0, 9)) else b"\r\n"
    return b"\r\n".join(lines) + end + body + draw(st.binary(max_size=10))


def near_http_response() -> st.SearchStrategy[bytes]:
    """Answers to an upgrade request: near-valid 101s, and anything (``ACCEPT`` is filled in)."""
    return st.one_of(mangled_101(), any_response())


# -- peers ---------------------------------------------------------------------------------


async def send_quietly(stream: ByteStream, data: bytes) -> bool:
    """Send ``data``; False if the peer already closed or reset the connection."""
    try:
        await stream.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        return False
    return True


async def receive_all(stream: ByteStream) -> bytes:
    """Everything the peer sends until it closes (or resets) the connection."""
    data = b""
    while True:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return data


async def read_request_head(stream: ByteStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    return data


def header_of(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        field_name, _, value = line.partition(b":")
        if field_name.strip().lower() == name.lower():
            return value.strip()
    return None


@dataclass
class Script:
    """What a raw server does with the next connection, and what it saw."""

    respond: Callable[[bytes], bytes]
    close_after: bool = False
    sent: bytes = b""
    seen: list[Frame] = field(default_factory=list)
    done: anyio.Event = field(default_factory=anyio.Event)


class TrickleStream(ByteStream):
    """A scripted peer: ``head``, then payload bytes ``chunk`` at a time, for ever.

    The payload reads as ``b"a"`` repeated once unmasked with ``key``. Records
    how many bytes the reader took before the first byte was sent back.
    """

    def __init__(self, head: bytes, *, chunk: int, key: bytes | None, cap: int) -> None:
        self._pending = head
        self._chunk = chunk
        self._pattern = apply_mask(b"aaaa", key) if key else b"aaaa"
        self._offset = 0
        self._cap = cap
        self.head_size = len(head)
        self.delivered = 0
        self.delivered_before_send: int | None = None
        self.sent = bytearray()
        self.closed = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.lowlevel.checkpoint()
        if self.closed:
            raise anyio.ClosedResourceError
        if self.delivered >= self._cap:
            raise anyio.EndOfStream
        if self._pending:
            data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        else:
            n, start = min(max_bytes, self._chunk), self._offset % 4
            data = (self._pattern * (n // 4 + 2))[start : start + n]
            self._offset += n
        self.delivered += len(data)
        return data

    async def send(self, item: bytes) -> None:
        await anyio.lowlevel.checkpoint()
        if self.delivered_before_send is None:
            self.delivered_before_send = self.delivered
        self.sent += item

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self.closed = True


class GatedStream(ByteStream):
    """A scripted peer: ``feed()`` bytes to the reader; sends wait until ``gate`` is set."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[bytes](16)
        self.gate = anyio.Event()
        self.sent = bytearray()

    async def feed(self, data: bytes) -> None:
        await self._send.send(data)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            raise anyio.EndOfStream from None

    async def send(self, item: bytes) -> None:
        await self.gate.wait()
        self.sent += item

    async def send_eof(self) -> None:
        await self._send.aclose()

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._receive.aclose()


# -- permessage-deflate ------------------------------------------------------------------------

_TAIL = b"\x00\x00\xff\xff"


class Deflater:
    """The sending side of permessage-deflate (RFC 7692), context takeover, 15-bit window."""

    def __init__(self) -> None:
        self._compress = zlib.compressobj(wbits=-15)

    def message(self, data: bytes, *, repeat: int = 1) -> bytes:
        """One message: ``data`` repeated ``repeat`` times (compressed piece by piece)."""
        out = b"".join(self._compress.compress(data) for _ in range(repeat))
        out += self._compress.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4] if out.endswith(_TAIL) else out


class Inflater:
    """The receiving side: messages with RSV1 are inflated, others kept as they are."""

    def __init__(self) -> None:
        self._decompress = zlib.decompressobj(wbits=-15)

    def message(self, got: Frame) -> bytes:
        if not got.rsv & 0x40:
            return got.payload
        return self._decompress.decompress(got.payload + _TAIL)


@st.composite
def deflate_sequences(draw: st.DrawFn, *, limit: int) -> tuple[bytes, list[str | bytes], bool]:
    """Compressed (and some plain) messages, maybe a broken compressed one at the end.

    Returns the bytes (masked client frames), the messages, and whether it ends broken.
    """
    deflater = Deflater()
    wire, messages = b"", []
    for _ in range(draw(st.integers(0, 4))):
        text = draw(st.booleans())
        message: str | bytes = (
            draw(st.text(max_size=300)) if text else draw(st.binary(max_size=300))
        )
        raw = message.encode() if isinstance(message, str) else message
        opcode = TEXT if text else BINARY
        if draw(st.integers(0, 4)) == 0:
            wire += frame(opcode, raw, mask=KEY)  # a message may go uncompressed
        else:
            packed = deflater.message(raw)
            cut = draw(st.integers(0, len(packed)))
            if cut and draw(st.booleans()):  # two fragments: RSV1 on the first only
                wire += frame(opcode, packed[:cut], fin=False, rsv=0x40, mask=KEY)
                wire += frame(CONTINUATION, packed[cut:], mask=KEY)
            else:
                wire += frame(opcode, packed, rsv=0x40, mask=KEY)
        messages.append(message)
    broken = draw(st.sampled_from(["", "", "random", "bomb", "damaged"]))
    if broken == "random":
        wire += frame(BINARY, draw(st.binary(min_size=1, max_size=100)), rsv=0x40, mask=KEY)
    elif broken == "bomb":
        packed = Deflater().message(b"\x00" * limit * draw(st.integers(2, 1000)))
        wire += frame(BINARY, packed, rsv=0x40, mask=KEY)
    elif broken == "damaged":
        damaged = bytearray(deflater.message(draw(st.binary(min_size=1, max_size=300))))
        damaged[draw(st.integers(0, len(damaged) - 1))] ^= 1 << draw(st.integers(0, 7))
        wire += frame(BINARY, bytes(damaged), rsv=0x40, mask=KEY)
    return wire, messages, bool(broken)
