"""permessage-deflate (RFC 7692) for wsproto, with a size threshold and a bounded inflate.

:class:`BoundedDeflate` replaces ``wsproto.extensions.PerMessageDeflate`` in a wsproto
``Connection`` or handshake. Unlike wsproto's, it sends messages shorter than
``threshold`` bytes uncompressed (RSV1 clear, which RFC 7692 allows per message) and
inflates with ``max_length``: one message never yields more than ``max_message_size``
bytes, and one inflate call never allocates more than the room left plus one byte, so
a 10 KB frame cannot become 10 MB in memory. An oversized message, compressed or not,
fails the connection with close code 1009.

Memory per connection (zlib, at the defaults: 15 window bits, ``mem_level=5``): the
compressor takes about 150 KiB (``2**(bits + 2) + 2**(mem_level + 9)`` plus ~6 KiB),
the decompressor about 40 KiB (``2**bits`` plus ~7 KiB). Each is created on the first
compressed message in its direction and, when context takeover is off for that
direction, freed again at the end of every message.
"""

from __future__ import annotations

import zlib
from typing import Final

from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

from anywire.errors import InvalidHandshake

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "DEFAULT_THRESHOLD", "BoundedDeflate", "default_extensions"]

#: Messages shorter than this many bytes are sent uncompressed.
DEFAULT_THRESHOLD: Final = 128
#: Largest message (after decompression) a receiver accepts by default: 1 MiB.
DEFAULT_MAX_MESSAGE_SIZE: Final = 2**20

_NAME: Final = "permessage-deflate"
_TAIL: Final = b"\x00\x00\xff\xff"  # the empty stored block that ends each message
_WINDOW_VALUES: Final = frozenset(str(bits) for bits in range(8, 16))  # no leading zeros
_FLAGS: Final = ("server_no_context_takeover", "client_no_context_takeover")
_SIZES: Final = ("server_max_window_bits", "client_max_window_bits")
_NO_RSV: Final = RsvBits(False, False, False)
_RSV1: Final = RsvBits(True, False, False)

_Proto = FrameDecoder | FrameProtocol
_Params = dict[str, int | None]


def _parse(element: str) -> _Params:
    """Parse ``permessage-deflate; key[=value]; ...``; ``ValueError`` if invalid.

    Window sizes map to an ``int``, or to ``None`` when given without a value.
    """
    name, *items = (part.strip() for part in element.split(";"))
    if name.lower() != _NAME:
        raise ValueError(f"not {_NAME}: {name!r}")
    params: _Params = {}
    for item in items:
        key, equals, value = (part.strip() for part in item.partition("="))
        key = key.lower()
        if key in params:
            raise ValueError(f"duplicate parameter {key}")
        if len(value) > 2 and value[0] == value[-1] == '"':
            value = value[1:-1]  # RFC 7692 section 7.1 allows the quoted-string form
        if key in _FLAGS and not equals:
            params[key] = None
        elif key in _SIZES and (not equals or value in _WINDOW_VALUES):
            params[key] = int(value) if equals else None
        else:
            raise ValueError(f"invalid parameter {item!r}")
    return params


def _window(params: _Params, key: str, default: int) -> int:
    """The window size ``key`` of a response: required to have a value when present."""
    if key not in params:
        return default
    value = params[key]
    if value is None:
        raise ValueError(f"{key} needs a value")
    return value


def _check_bits(name: str, value: int | None) -> None:
    # zlib cannot compress with an 8-bit window, so we never agree to use one.
    if value is not None and not 9 <= value <= 15:
        raise ValueError(f"{name} must be between 9 and 15, got {value}")


class BoundedDeflate(Extension):
    """permessage-deflate with a compression threshold and a bounded inflate.

    The first four parameters are those of ``wsproto.extensions.PerMessageDeflate``
    (``None`` window bits mean 15). ``threshold``: messages shorter than this many bytes
    go out uncompressed; a fragmented message is always compressed, since its size is
    unknown when its first frame leaves. ``max_message_size``: the largest message
    accepted, after decompression (``None``: unbounded); a larger one fails the
    connection with 1009. ``compress_level`` and ``mem_level`` go to
    ``zlib.compressobj``. Use one instance per connection.
    """

    name = _NAME

    def __init__(
        self,
        client_no_context_takeover: bool = False,
        client_max_window_bits: int | None = None,
        server_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        compress_level: int = 6,
        mem_level: int = 5,
    ) -> None:
        _check_bits("client_max_window_bits", client_max_window_bits)
        _check_bits("server_max_window_bits", server_max_window_bits)
        if threshold < 0 or (max_message_size is not None and max_message_size < 0):
            raise ValueError("threshold and max_message_size must not be negative")
        if not -1 <= compress_level <= 9 or not 1 <= mem_level <= 9:
            raise ValueError("compress_level must be in -1..9 and mem_level in 1..9")
        self.threshold = threshold
        self.max_message_size = max_message_size
        self._level = compress_level
        self._mem_level = mem_level
        self._want_client_bits = client_max_window_bits
        self._want_server_bits = server_max_window_bits
        # Configured values until the handshake, then the agreed ones.
        self.client_no_context_takeover = client_no_context_takeover
        self.server_no_context_takeover = server_no_context_takeover
        self.client_max_window_bits = client_max_window_bits or 15
        self.server_max_window_bits = server_max_window_bits or 15
        self._enabled = False
        self._deflater: zlib._Compress | None = None
        self._inflater: zlib._Decompress | None = None
        self._out_compressed = False  # the message being sent
        self._in_compressed = False  # the message being received
        self._in_control = False  # the frame being received
        self._in_size = 0  # bytes of the message being received, after inflating

    def __repr__(self) -> str:
        state = "enabled" if self._enabled else "not negotiated"
        return (
            f"<{type(self).__name__} {state} client_max_window_bits="
            f"{self.client_max_window_bits} server_max_window_bits={self.server_max_window_bits}"
            f" client_no_context_takeover={self.client_no_context_takeover}"
            f" server_no_context_takeover={self.server_no_context_takeover}"
            f" threshold={self.threshold} max_message_size={self.max_message_size}>"
        )

    def enabled(self) -> bool:
        return self._enabled

    # -- negotiation ------------------------------------------------------------------

    def offer(self) -> str:
        """The client's offer (the parameters after the extension name)."""
        bits = self._want_client_bits
        params = ["client_max_window_bits" + ("" if bits is None else f"={bits}")]
        if self._want_server_bits is not None:
            params.append(f"server_max_window_bits={self._want_server_bits}")
        if self.client_no_context_takeover:
            params.append("client_no_context_takeover")
        if self.server_no_context_takeover:
            params.append("server_no_context_takeover")
        return "; ".join(params)

    def accept(self, offer: str) -> bool | str | None:
        """Server: answer the first acceptable offer; ``None`` declines.

        ``offer`` is one offer or several, comma-separated. Once an offer is accepted,
        later calls decline (wsproto calls once per offer and keeps the last answer).
        """
        if self._enabled:
            return None
        for element in offer.split(","):
            try:
                answer = self._answer(_parse(element))
            except ValueError:
                continue
            self._enabled = True
            return answer or True
        return None

    def _answer(self, offered: _Params) -> str:
        want_server = self._want_server_bits or 15
        if "server_max_window_bits" in offered:
            server_bits = min(_window(offered, "server_max_window_bits", 15), want_server)
            if server_bits < 9:
                raise ValueError("zlib cannot compress with an 8-bit window")
        else:
            server_bits = want_server
        if "client_max_window_bits" in offered:
            client_bits = min(offered["client_max_window_bits"] or 15, self._want_client_bits or 15)
        elif self._want_client_bits is not None:
            raise ValueError("the client cannot limit its window")
        else:
            client_bits = 15
        server_nct = self.server_no_context_takeover or "server_no_context_takeover" in offered
        client_nct = self.client_no_context_takeover or "client_no_context_takeover" in offered
        self._agree(client_nct, client_bits, server_nct, server_bits)
        params = [key for key, on in zip(_FLAGS, (server_nct, client_nct), strict=True) if on]
        if server_bits < 15 or "server_max_window_bits" in offered:
            params.append(f"server_max_window_bits={server_bits}")
        if client_bits < 15:
            params.append(f"client_max_window_bits={client_bits}")
        return "; ".join(params)

    def finalize(self, offer: str) -> None:
        """Client: apply the server's response; raise ``InvalidHandshake`` if invalid."""
        try:
            self._apply(_parse(offer))
        except ValueError as exc:
            raise InvalidHandshake(f"invalid {_NAME} response {offer!r}: {exc}") from exc
        self._enabled = True

    def _apply(self, response: _Params) -> None:
        if self._enabled:
            raise ValueError(f"the server accepted {_NAME} twice")
        server_nct = "server_no_context_takeover" in response
        if self.server_no_context_takeover and not server_nct:
            raise ValueError("server_no_context_takeover was requested")
        offered = self._want_server_bits
        if offered is not None and "server_max_window_bits" not in response:
            raise ValueError("server_max_window_bits was requested")
        server_bits = _window(response, "server_max_window_bits", 15)
        if server_bits > (offered or 15):
            raise ValueError(f"server_max_window_bits above the {offered} offered")
        want_client = self._want_client_bits or 15
        client_bits = _window(response, "client_max_window_bits", want_client)
        # 8 is valid (RFC 7692 7.1.2.2) but zlib cannot compress with it: we then send
        # every message uncompressed, which the RFC allows per message.
        if not 8 <= client_bits <= want_client:
            raise ValueError(f"cannot use client_max_window_bits={client_bits}")
        client_nct = self.client_no_context_takeover or "client_no_context_takeover" in response
        self._agree(client_nct, client_bits, server_nct, server_bits)

    def _agree(
        self, client_nct: bool, client_bits: int, server_nct: bool, server_bits: int
    ) -> None:
        self.client_no_context_takeover, self.client_max_window_bits = client_nct, client_bits
        self.server_no_context_takeover, self.server_max_window_bits = server_nct, server_bits

    # -- receiving --------------------------------------------------------------------

    def frame_inbound_header(
        self, proto: _Proto, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        self._in_control = opcode.iscontrol()
        if self._in_control:
            return CloseReason.PROTOCOL_ERROR if rsv.rsv1 else _NO_RSV
        if opcode is not Opcode.CONTINUATION:
            self._start_message(proto.client, rsv.rsv1)
        elif rsv.rsv1:
            return CloseReason.PROTOCOL_ERROR
        if not self._in_compressed:
            # Uncompressed messages are bounded too, before wsproto reads the payload.
            self._in_size += payload_length
            if self._too_big():
                return CloseReason.MESSAGE_TOO_BIG
        return _RSV1

    def _start_message(self, client: bool, compressed: bool) -> None:
        self._in_compressed, self._in_size = compressed, 0
        if compressed and self._inflater is None:
            bits = self.server_max_window_bits if client else self.client_max_window_bits
            self._inflater = zlib.decompressobj(-bits)

    def frame_inbound_payload_data(self, proto: _Proto, data: bytes) -> bytes | CloseReason:
        if self._in_control or not self._in_compressed:
            return data
        return self._inflate(data)

    def frame_inbound_complete(self, proto: _Proto, fin: bool) -> bytes | CloseReason | None:
        if self._in_control or not self._in_compressed or not fin:
            return None
        self._in_compressed = False
        assert self._inflater is not None
        tail = b"" if self._inflater.eof else self._inflate(_TAIL)
        peer_nct = (
            self.server_no_context_takeover if proto.client else self.client_no_context_takeover
        )
        if self._inflater is not None and (self._inflater.eof or peer_nct):
            # A final deflate block (BFINAL) ends the stream: the next message starts a
            # new one, so a peer that sets BFINAL must not use context takeover.
            self._inflater = None
        return tail

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        inflater = self._inflater
        assert inflater is not None
        limit = 0 if self.max_message_size is None else self.max_message_size - self._in_size + 1
        try:
            out = inflater.decompress(data, limit)
        except zlib.error:
            return self._fail(CloseReason.INVALID_FRAME_PAYLOAD_DATA)
        self._in_size += len(out)
        if self._too_big() or inflater.unconsumed_tail:
            return self._fail(CloseReason.MESSAGE_TOO_BIG)
        if inflater.unused_data:  # compressed data after the final block
            return self._fail(CloseReason.INVALID_FRAME_PAYLOAD_DATA)
        return out

    def _too_big(self) -> bool:
        return self.max_message_size is not None and self._in_size > self.max_message_size

    def _fail(self, reason: CloseReason) -> CloseReason:
        self._inflater = None  # the connection is failing: free the window now
        return reason

    # -- sending ----------------------------------------------------------------------

    def frame_outbound(
        self, proto: _Proto, opcode: Opcode, rsv: RsvBits, data: bytes, fin: bool
    ) -> tuple[RsvBits, bytes]:
        if opcode.iscontrol():
            return rsv, data
        if opcode is not Opcode.CONTINUATION:  # decided once per message
            self._out_compressed = self._can_compress(proto.client) and (
                not fin or len(data) >= self.threshold
            )
            if self._out_compressed:
                rsv = RsvBits(True, rsv.rsv2, rsv.rsv3)
        if not self._out_compressed:
            return rsv, data
        return rsv, self._deflate(proto.client, data, fin)

    def _can_compress(self, client: bool) -> bool:
        bits = self.client_max_window_bits if client else self.server_max_window_bits
        return bits >= 9

    def _deflate(self, client: bool, data: bytes, fin: bool) -> bytes:
        if self._deflater is None:
            bits = self.client_max_window_bits if client else self.server_max_window_bits
            self._deflater = zlib.compressobj(self._level, zlib.DEFLATED, -bits, self._mem_level)
        # Flush every frame, not only the last: a fragment reaches the peer when sent.
        out = self._deflater.compress(data) + self._deflater.flush(zlib.Z_SYNC_FLUSH)
        if not fin:
            return out
        if self.client_no_context_takeover if client else self.server_no_context_takeover:
            self._deflater = None
        assert out.endswith(_TAIL)
        return out[:-4]


def default_extensions(
    *, compression: bool, max_message_size: int | None, threshold: int = DEFAULT_THRESHOLD
) -> list[Extension]:
    """The extensions to offer or accept on one new connection (fresh instances)."""
    if not compression:
        return []
    return [BoundedDeflate(threshold=threshold, max_message_size=max_message_size)]
