"""Our own RFC 6455 frame codec: a drop-in for ``wsproto.connection.Connection``.

:class:`FastConnection` replaces wsproto's ``Connection`` once the opening handshake
is done. It has the same constructor, methods and properties, and emits wsproto's own
event classes: for the same bytes fed in the same chunks it yields the same events
(same data, same ``frame_finished``/``message_finished`` flags, same close codes) and
moves through the same states. Extensions (``BoundedDeflate``) are called through the
wsproto hooks at the same points wsproto calls them, with one difference: a frame's
``frame_inbound_header`` hook runs once per frame, where wsproto runs it again each
time it retries a header whose masking key has not fully arrived.

What it buys: a complete, unfragmented data frame with no extension in use is parsed
in one step (header, unmask, UTF-8 decode) with no per-byte Python loop; wsproto
takes the general path for every frame. Partial frames are emitted as they arrive,
like wsproto does, so a large frame is never buffered whole.

Unmasking XORs the payload as one integer for short payloads and, from
``_TRANSLATE_MIN`` bytes up, with one ``bytes.translate`` per key byte over a strided
slice (measured fastest at each size on CPython 3.11; see ``bench/frames_micro.py``).
"""

from __future__ import annotations

import codecs
import os
import struct
from collections import deque
from collections.abc import Generator
from typing import Final, cast

from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Message, Ping, Pong, TextMessage
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode, ParseFailed, RsvBits
from wsproto.utilities import LocalProtocolError

__all__ = ["FastConnection"]

_OPEN: Final = ConnectionState.OPEN
_CLOSED: Final = ConnectionState.CLOSED
_LOCAL_CLOSING: Final = ConnectionState.LOCAL_CLOSING
_REMOTE_CLOSING: Final = ConnectionState.REMOTE_CLOSING

_CONTINUATION: Final = Opcode.CONTINUATION
_TEXT: Final = Opcode.TEXT
_BINARY: Final = Opcode.BINARY
_CLOSE: Final = Opcode.CLOSE
_PING: Final = Opcode.PING
_PONG: Final = Opcode.PONG
_OPCODES: Final = {int(op): op for op in Opcode}

_NO_RSV: Final = RsvBits(False, False, False)
_KNOWN_CODES: Final = {int(code): code for code in CloseReason}
_LOCAL_ONLY: Final = frozenset({1005, 1006, 1015})  # never valid on the wire (RFC 6455 7.4.1)
_MAX_CONTROL: Final = 125
_TRANSLATE_MIN: Final = 384  # from this payload size, translate() beats the big-int XOR
_PACK_16: Final = struct.Struct("!BBH").pack
_PACK_64: Final = struct.Struct("!BBQ").pack
_UNPACK_KEY: Final = struct.Struct("<I").unpack_from
_REPEAT_KEY: Final = [sum(1 << 32 * i for i in range(n)) for n in range(33)]  # n words of 0x1
_LOW: Final = [(1 << 8 * n) - 1 for n in range(_MAX_CONTROL + 1)]  # n bytes of 0xFF
_SHORT_HEADS: Final = [[bytes((b0, n)) for n in range(_MAX_CONTROL + 1)] for b0 in (0x82, 0x81)]
_MASK_ERRORS: Final = {
    True: "client received unexpected masked frame",
    False: "server received unexpected unmasked frame",
}

_IDENTITY: Final = int.from_bytes(bytes(range(256)), "little")
_XOR_TABLES: Final = [  # translate() tables XORing each byte with k (built in 0.2 ms)
    (_IDENTITY ^ int.from_bytes(bytes((k,)) * 256, "little")).to_bytes(256, "little")
    for k in range(256)
]

_Buffer = bytes | bytearray | memoryview
_new_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def _xor(data: _Buffer, key: bytes) -> bytes | bytearray:
    """``data`` XORed with the 4-byte ``key`` repeated (masking and unmasking are one)."""
    n = len(data)
    if n <= _MAX_CONTROL:
        mask = int.from_bytes(key, "little") * _REPEAT_KEY[(n + 3) >> 2] & _LOW[n]
        return (int.from_bytes(data, "little") ^ mask).to_bytes(n, "little")
    if n < _TRANSLATE_MIN:
        mask = int.from_bytes((key * ((n >> 2) + 1))[:n], "little")
        return (int.from_bytes(data, "little") ^ mask).to_bytes(n, "little")
    out = bytearray(data)
    for lane in range(4):
        if key[lane]:
            out[lane::4] = out[lane::4].translate(_XOR_TABLES[key[lane]])
    return out


def _truncate_utf8(data: bytes, limit: int) -> bytes:
    """The longest prefix of UTF-8 ``data`` within ``limit`` bytes that ends on a character."""
    if len(data) <= limit:
        return data
    while limit and data[limit] & 0xC0 == 0x80:  # a continuation byte: back off
        limit -= 1
    return data[:limit]


def _close_payload(code: int | None, reason: str | None) -> bytes:
    """The payload of a close frame we send, with wsproto's mapping of local-only codes."""
    if code is CloseReason.NO_STATUS_RCVD:  # identity, as wsproto: a plain 1005 maps to 1000
        code = None
    if code is None and reason:
        raise TypeError("cannot specify a reason without a code")
    if code is None:
        return b""
    if code in _LOCAL_ONLY:
        code = CloseReason.NORMAL_CLOSURE
    payload = struct.pack("!H", code)
    if reason is not None:
        payload += _truncate_utf8(reason.encode("utf-8"), _MAX_CONTROL - 2)
    return payload


def _parse_close(payload: bytes | bytearray) -> tuple[int, str]:
    """The (code, reason) of a received close frame; ``ParseFailed`` if invalid."""
    if not payload:
        return CloseReason.NO_STATUS_RCVD, ""
    if len(payload) == 1:
        raise ParseFailed("CLOSE with 1 byte payload")
    code: int = (payload[0] << 8) | payload[1]
    if not 1000 <= code <= 4999:
        raise ParseFailed("CLOSE with invalid code")
    if code in _LOCAL_ONLY:
        raise ParseFailed("remote CLOSE with local-only reason")
    if code in _KNOWN_CODES:
        code = _KNOWN_CODES[code]
    elif code < 3000:
        raise ParseFailed("CLOSE with unknown reserved code")
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"Error decoding CLOSE reason: {exc}"
        raise ParseFailed(msg, CloseReason.INVALID_FRAME_PAYLOAD_DATA) from None


def _decode_error(exc: UnicodeDecodeError) -> ParseFailed:
    return ParseFailed(str(exc), CloseReason.INVALID_FRAME_PAYLOAD_DATA)


def _payload_length(buf: bytes | bytearray, pos: int, short: int) -> tuple[int, int] | None:
    """(payload length, header size before the key) of the header at ``pos``; None: wait."""
    if short < 126:
        return short, 2
    size = 4 if short == 126 else 10
    if len(buf) - pos < size:
        return None
    length = int.from_bytes(buf[pos + 2 : pos + size], "big")
    if size == 4 and length <= _MAX_CONTROL:
        raise ParseFailed("Payload length used 2 bytes when 1 would have sufficed")
    if size == 10 and length <= 0xFFFF:
        raise ParseFailed("Payload length used 8 bytes when 2 would have sufficed")
    if length >> 63:
        raise ParseFailed("8-byte payload length with non-zero MSB")
    return length, size


class FastConnection:
    """A WebSocket connection after the handshake: wsproto's ``Connection``, faster.

    Same constructor, ``receive_data()``, ``events()``, ``send()``, ``state`` and
    ``client`` as ``wsproto.connection.Connection``; same events, states, close codes
    and ``LocalProtocolError`` cases. ``extensions`` are wsproto ``Extension`` objects;
    only those already ``enabled()`` take part, as in wsproto.
    """

    __slots__ = (
        "_buf",
        "_control",
        "_decoder",
        "_extensions",
        "_fin",
        "_hooked",
        "_in_frame",
        "_key",
        "_masked_in",
        "_message",
        "_opcode",
        "_out_opcode",
        "_parsing",
        "_pending",
        "_plain_out",
        "_pos",
        "_remaining",
        "_state",
        "client",
    )

    def __init__(
        self,
        connection_type: ConnectionType,
        extensions: list[Extension] | None = None,
        trailing_data: bytes = b"",
    ) -> None:
        self.client = connection_type is ConnectionType.CLIENT
        self._extensions = [ext for ext in extensions or [] if ext.enabled()]
        self._state = _OPEN
        self._pending: deque[Event] = deque()
        self._parsing = True  # False once a close frame or a protocol error was seen
        self._buf: bytes | bytearray = b""
        self._pos = 0  # bytes of ``_buf`` already parsed
        self._masked_in = not self.client  # servers receive masked frames
        # The frame being received (once its header is read).
        self._in_frame = False
        self._hooked = False  # extensions saw the header at ``_pos``, whose key is missing
        self._fin = True
        self._opcode = _CONTINUATION  # of the next payload chunk
        self._control = False
        self._remaining = 0
        self._key: bytes | None = None  # rotated to the next payload byte
        # The message being received and the one being sent.
        self._message: Opcode | None = None
        self._decoder: codecs.IncrementalDecoder | None = None
        self._out_opcode: Opcode | None = None
        self._plain_out = self._plain_server()  # no message in progress, nothing to mask
        self.receive_data(trailing_data)

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def _proto(self) -> FrameProtocol:
        """What extension hooks get as ``proto``: they only read ``proto.client``."""
        return cast("FrameProtocol", self)

    def __repr__(self) -> str:
        side = "client" if self.client else "server"
        return f"<FastConnection {side} {self._state.name}>"

    # -- receiving ------------------------------------------------------------------

    def receive_data(self, data: bytes | None) -> None:
        """Pass bytes received from the peer; ``None`` means the connection was lost."""
        if data is None:
            self._pending.append(CloseConnection(code=CloseReason.ABNORMAL_CLOSURE))
            self._state = _CLOSED
            return
        state = self._state
        if state is _OPEN or state is _LOCAL_CLOSING:
            if not self._parsing:  # after a close frame or an error, wsproto parses no more
                return
            if self._pos < len(self._buf):
                self._append(data)
            else:
                self._buf, self._pos = bytes(data), 0  # no copy for bytes
        elif state is _CLOSED:
            raise LocalProtocolError("Connection already closed.")

    def _append(self, data: bytes) -> None:
        buf, pos = self._buf, self._pos
        if not isinstance(buf, bytearray):
            buf = bytearray(memoryview(buf)[pos:])
        elif pos:
            del buf[:pos]  # only a partial header or control frame is left
        buf += data
        self._buf, self._pos = buf, 0

    def events(self) -> Generator[Event, None, None]:
        """The events the data received so far makes, as wsproto's ``events()``."""
        pending = self._pending
        while pending:
            yield pending.popleft()
        try:
            # No event can come from an empty buffer, even in a frame (it waits).
            while self._parsing and self._pos < len(self._buf):
                event = self._next_event()
                if event is None:
                    return
                yield event
        except ParseFailed as exc:
            self._parsing = False
            yield CloseConnection(code=exc.code, reason=str(exc))
        self._buf, self._pos = b"", 0  # all parsed, or never to be: let it go

    def _next_event(self) -> Event | None:
        """The fast path: a whole unfragmented text or binary frame, else the general one.

        One function on purpose: each call costs about as much as the XOR of 32 bytes.
        """
        buf, pos = self._buf, self._pos
        if self._in_frame or self._message is not None or self._extensions or len(buf) - pos < 4:
            return self._general()
        b0, b1 = buf[pos], buf[pos + 1]
        if (b0 != 0x81 and b0 != 0x82) or (b1 >= 0x80) is not self._masked_in:
            return self._general()
        length, start = b1 & 0x7F, pos + 2
        if length > _MAX_CONTROL:  # 16 bits; the general path takes 64 and rejects < 126
            length, start = (buf[start] << 8) | buf[start + 1], pos + 4
            if b1 & 0x7F == 127 or length <= _MAX_CONTROL:
                return self._general()
        end = start + 4 + length if b1 >= 0x80 else start + length
        if end > len(buf):
            return self._general()
        payload = buf[end - length : end]
        if b1 >= 0x80 and length <= _MAX_CONTROL:  # _xor() inlined: the key as one integer
            mask = _UNPACK_KEY(buf, start)[0] * _REPEAT_KEY[(length + 3) >> 2] & _LOW[length]
            payload = (int.from_bytes(payload, "little") ^ mask).to_bytes(length, "little")
        elif b1 >= 0x80:
            payload = _xor(payload, bytes(buf[start : start + 4]))
        self._pos, self._hooked = end, False  # (the general path may have seen the header)
        if b0 == 0x82:
            return BytesMessage(bytes(payload), True, True)
        try:
            return TextMessage(payload.decode(), True, True)
        except UnicodeDecodeError as exc:
            raise _decode_error(exc) from None

    def _general(self) -> Event | None:
        if not self._in_frame and not self._read_header():
            return None
        return self._read_payload()

    def _read_header(self) -> bool:
        """Parse the next frame header, checking it in wsproto's order; False: wait."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 2:
            return False
        b0, b1 = buf[pos], buf[pos + 1]
        opcode = _OPCODES.get(b0 & 0x0F)
        if opcode is None:
            raise ParseFailed(f"Invalid opcode {b0 & 0x0F:#x}")
        control = opcode >= 8
        if control and b0 < 0x80:
            raise ParseFailed("Invalid attempt to fragment control frame")
        if control and b1 & 0x7F > _MAX_CONTROL:
            raise ParseFailed("Control frame with payload len > 125")
        parsed = _payload_length(buf, pos, b1 & 0x7F)
        if parsed is None:
            return False
        length, size = parsed
        if not self._hooked:
            self._check_rsv(opcode, b0, length)
            self._hooked = True
        return self._read_key(b1 >= 0x80, pos + size, opcode, length, b0 >= 0x80)

    def _check_rsv(self, opcode: Opcode, b0: int, length: int) -> None:
        """Ask the extensions which RSV bits they claim (wsproto's extension_processing)."""
        used = 0
        if self._extensions:
            rsv = RsvBits(bool(b0 & 0x40), bool(b0 & 0x20), bool(b0 & 0x10))
            for ext in self._extensions:
                result = ext.frame_inbound_header(self._proto, opcode, rsv, length)
                if isinstance(result, CloseReason):
                    raise ParseFailed("error in extension", result)
                used |= bool(result[0]) << 6 | bool(result[1]) << 5 | bool(result[2]) << 4
        if b0 & 0x70 & ~used:
            raise ParseFailed("Reserved bit set unexpectedly")

    def _read_key(self, masked: bool, at: int, opcode: Opcode, length: int, fin: bool) -> bool:
        if masked is not self._masked_in:
            raise ParseFailed(_MASK_ERRORS[masked])
        if masked:
            if len(self._buf) < at + 4:
                return False
            self._key, at = bytes(self._buf[at : at + 4]), at + 4
        else:
            self._key = None
        self._pos, self._hooked, self._in_frame = at, False, True
        self._fin, self._opcode, self._control = fin, opcode, opcode >= 8
        self._remaining = length
        return True

    def _read_payload(self) -> Event | None:
        """The payload of the current frame that has arrived, as one event; None: wait."""
        buf, pos, remaining = self._buf, self._pos, self._remaining
        available = len(buf) - pos
        if available < remaining and (self._control or not available):
            return None  # control frames wait for their whole payload
        end = pos + min(available, remaining)
        payload = buf[pos:end]
        self._pos, self._remaining = end, remaining - (end - pos)
        if self._key is not None:
            payload = self._unmask(payload)
        finished = self._remaining == 0
        if self._extensions:
            payload = self._inbound_hooks(payload, finished)
        opcode = self._opcode
        if finished:
            self._in_frame = False
        else:
            self._opcode = _CONTINUATION
        if opcode >= 8:
            return self._control_event(opcode, payload)
        return self._data_event(opcode, payload, finished)

    def _unmask(self, payload: bytes | bytearray) -> bytes | bytearray:
        key = self._key
        assert key is not None
        turn = len(payload) & 3
        self._key = key[turn:] + key[:turn]  # the next chunk starts at this key byte
        return _xor(payload, key)

    def _inbound_hooks(self, payload: bytes | bytearray, finished: bool) -> bytes:
        data = bytes(payload)
        for ext in self._extensions:
            result = ext.frame_inbound_payload_data(self._proto, data)
            if isinstance(result, CloseReason):
                raise ParseFailed("error in extension", result)
            data = bytes(result)
        if finished:
            for ext in self._extensions:
                tail = ext.frame_inbound_complete(self._proto, self._fin)
                if isinstance(tail, CloseReason):
                    raise ParseFailed("error in extension", tail)
                if tail is not None:
                    data += tail
        return data

    def _data_event(
        self, opcode: Opcode, payload: bytes | bytearray, frame_finished: bool
    ) -> TextMessage | BytesMessage:
        """Check the frame against the message in progress (wsproto's MessageDecoder)."""
        message = self._message
        if message is None:
            if opcode is _CONTINUATION:
                raise ParseFailed("unexpected CONTINUATION")
            message = self._message = opcode
        elif opcode is not _CONTINUATION:
            raise ParseFailed(f"expected CONTINUATION, got {opcode!r}")
        finished = frame_finished and self._fin
        if finished:
            self._message = None
        if message is _BINARY:
            return BytesMessage(bytes(payload), frame_finished, finished)
        return TextMessage(self._decode(opcode, payload, finished), frame_finished, finished)

    def _decode(self, opcode: Opcode, payload: bytes | bytearray, finished: bool) -> str:
        try:
            if opcode is _TEXT and finished:  # a whole message in one chunk
                self._decoder = None
                return str(payload, "utf-8")
            if opcode is _TEXT:
                self._decoder = _new_utf8_decoder()
            assert self._decoder is not None
            text: str = self._decoder.decode(payload, finished)
        except UnicodeDecodeError as exc:
            raise _decode_error(exc) from None
        if finished:
            self._decoder = None
        return text

    def _control_event(self, opcode: Opcode, payload: bytes | bytearray) -> Event:
        if opcode is _PING:
            return Ping(bytes(payload))
        if opcode is not _CLOSE:
            return Pong(bytes(payload))
        code, reason = _parse_close(payload)
        self._parsing = False
        self._state = _CLOSED if self._state is _LOCAL_CLOSING else _REMOTE_CLOSING
        return CloseConnection(code=code, reason=reason)

    # -- sending --------------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """The bytes that send ``event``; ``LocalProtocolError`` if the state forbids it."""
        state = self._state
        if state is _OPEN:
            if isinstance(event, Message):
                data = event.data
                if self._plain_out and event.message_finished:  # a short message from a server?
                    payload = data.encode() if type(data) is str else data
                    if type(payload) is bytes and len(payload) <= _MAX_CONTROL:
                        return _SHORT_HEADS[type(data) is str][len(payload)] + payload
                return self._send_data(data, event.message_finished)
            if isinstance(event, Ping | Pong):
                return self._frame(_PING if isinstance(event, Ping) else _PONG, event.payload)
        if isinstance(event, CloseConnection) and (state is _OPEN or state is _REMOTE_CLOSING):
            data = self._frame(_CLOSE, _close_payload(event.code, event.reason))
            self._state = _CLOSED if state is _REMOTE_CLOSING else _LOCAL_CLOSING
            return data
        raise LocalProtocolError(f"Event {event} cannot be sent in state {state}.")

    def send_message(self, data: str | bytes) -> bytes:
        """``send(TextMessage(data))`` for a ``str``, else ``send(BytesMessage(data))``.

        The bytes of one whole message, without building the event (that costs
        about as much as the rest of sending a short message).
        """
        if self._state is not _OPEN:
            kind = "TextMessage" if isinstance(data, str) else "BytesMessage"
            raise LocalProtocolError(f"Event {kind} cannot be sent in state {self._state}.")
        if self._plain_out:  # a short message from a server?
            payload = data.encode() if type(data) is str else data
            if type(payload) is bytes and len(payload) <= _MAX_CONTROL:
                return _SHORT_HEADS[type(data) is str][len(payload)] + payload
        return self._send_data(data, True)

    def _send_data(self, payload: bytes | bytearray | memoryview | str, fin: bool) -> bytes:
        if isinstance(payload, str):
            opcode, payload = _TEXT, payload.encode("utf-8")
        elif isinstance(payload, bytes | bytearray | memoryview):
            opcode = _BINARY
        else:
            raise TypeError("Must provide bytes or text")
        if self._out_opcode is None:
            self._out_opcode = opcode
        elif self._out_opcode is not opcode:
            raise TypeError("Data type mismatch inside message")
        else:
            opcode = _CONTINUATION
        if fin:
            self._out_opcode = None
        self._plain_out = self._out_opcode is None and self._plain_server()
        return self._frame(opcode, payload, fin)

    def _plain_server(self) -> bool:
        return not self.client and not self._extensions

    def _frame(
        self, opcode: Opcode, payload: bytes | bytearray | memoryview, fin: bool = True
    ) -> bytes:
        b0 = (0x80 if fin else 0) | opcode
        if self._extensions:
            rsv, payload = self._outbound_hooks(opcode, payload, fin)
            b0 |= rsv
        length = len(payload)
        b1 = 0x80 if self.client else 0
        if length <= _MAX_CONTROL:
            head = bytes((b0, b1 | length))
        elif opcode >= 8:
            raise ValueError("payload too long for control frame")
        elif length <= 0xFFFF:
            head = _PACK_16(b0, b1 | 126, length)
        else:
            head = _PACK_64(b0, b1 | 127, length)
        if not b1:
            return head + payload
        key = os.urandom(4)
        return head + key + _xor(payload, key)

    def _outbound_hooks(
        self, opcode: Opcode, payload: bytes | bytearray | memoryview, fin: bool
    ) -> tuple[int, bytes]:
        rsv, data = _NO_RSV, bytes(payload)
        for ext in reversed(self._extensions):
            rsv, out = ext.frame_outbound(self._proto, opcode, rsv, data, fin)
            data = bytes(out)
        return bool(rsv[0]) << 6 | bool(rsv[1]) << 5 | bool(rsv[2]) << 4, data
