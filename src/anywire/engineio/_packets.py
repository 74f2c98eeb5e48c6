"""Engine.IO v4 packets: the types, the two encodings, the OPEN packet's JSON.

A packet is a type digit followed by its data. On WebSocket each packet is one
frame: a text frame ``"4hello"``, or a binary frame holding a binary message
as is (no type prefix). On long-polling every packet is text: a binary message
becomes ``"b"`` + base64 (``"bAQIDBA=="``), and packets are joined by the
record separator (see :mod:`._payload`).

Decoding never raises anything but :class:`PacketError` for bad input.
"""

from __future__ import annotations

import base64
import enum
import json as _stdlib_json
from dataclasses import dataclass
from typing import Any, Final, Protocol

from anywire.engineio._errors import PacketError
from anywire.errors import LocalProtocolError

__all__ = [
    "DEFAULT_JSON",
    "Handshake",
    "JsonModule",
    "Packet",
    "PacketType",
    "Transport",
    "decode_message",
    "decode_packet",
    "encode_frame",
    "encode_text",
    "utf8_length",
]

#: The record separator that joins packets in a long-polling payload.
SEPARATOR: Final = "\x1e"
#: The data of the upgrade probe: ``"2probe"`` then ``"3probe"``.
PROBE: Final = "probe"


class PacketType(enum.IntEnum):
    """The packet types of Engine.IO v4; the value is the digit on the wire."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class Transport(enum.StrEnum):
    """The two transports; the value is the ``transport`` query parameter."""

    POLLING = "polling"
    WEBSOCKET = "websocket"


_PREFIX: Final = {t: str(t.value) for t in PacketType}
_BY_DIGIT: Final = {str(t.value): t for t in PacketType}
_BINARY: Final = (bytes, bytearray, memoryview)


@dataclass(frozen=True, slots=True)
class Packet:
    """One Engine.IO packet.

    ``data`` is ``str``, ``bytes`` (MESSAGE only: a binary message) or ``None``.
    A MESSAGE always has data (``None`` becomes ``""``); any other type with
    ``""`` has ``None``, since the wire cannot tell them apart.
    """

    type: PacketType
    data: str | bytes | None = None

    def __post_init__(self) -> None:
        data = self.data
        if data.__class__ is str and data:
            return
        if isinstance(data, bytes):
            if self.type is not PacketType.MESSAGE:
                raise LocalProtocolError(f"a {self.type.name} packet cannot carry bytes")
        elif data is None or data == "":
            object.__setattr__(self, "data", "" if self.type is PacketType.MESSAGE else None)
        elif not isinstance(data, str):
            raise LocalProtocolError(f"packet data must be str or bytes, not {type(data)}")

    @property
    def binary(self) -> bool:
        """Whether this is a binary message."""
        return isinstance(self.data, bytes)

    def wire_size(self) -> int:
        """Bytes of the WebSocket form: the type digit and the data (binary: the data)."""
        data = self.data
        if isinstance(data, bytes):
            return len(data)
        return 1 + (utf8_length(data) if data else 0)


def utf8_length(text: str) -> int:
    """Length of ``text`` in UTF-8 (lone surrogates count as 3 bytes each)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def encode_frame(packet: Packet) -> str | bytes:
    """The WebSocket form: ``bytes`` for a binary message (send a binary frame), else text."""
    data = packet.data
    if isinstance(data, bytes):
        return data
    return _PREFIX[packet.type] + data if data else _PREFIX[packet.type]


def encode_text(packet: Packet) -> str:
    """The long-polling form: always text, a binary message as ``"b"`` + base64.

    Raises :class:`~anywire.errors.LocalProtocolError` for text data holding the record
    separator, which would split the payload (the spec forbids it).
    """
    data = packet.data
    if isinstance(data, bytes):
        return "b" + base64.b64encode(data).decode("ascii")
    if not data:
        return _PREFIX[packet.type]
    if SEPARATOR in data:
        raise LocalProtocolError("text data holds the record separator \\x1e")
    return _PREFIX[packet.type] + data


def decode_message(data: str | bytes, json: JsonModule) -> Any:
    """What python-engineio hands a ``message`` handler: text that parses as JSON (and
    does not start with a digit: its rule against bare numbers) as the decoded value,
    any other text as ``str``, binary as ``bytes``."""
    if not isinstance(data, str) or not data or data[0].isnumeric():
        return data
    if json is DEFAULT_JSON and data[0] not in _JSON_FIRST_CHARS:
        return data  # cannot parse: skip raising and catching JSONDecodeError
    try:
        return json.loads(data)
    except (ValueError, RecursionError, TypeError):
        return data


def decode_packet(data: str | bytes) -> Packet:
    """Decode a WebSocket frame or one item of a long-polling payload.

    ``bytes`` (a binary frame) is a binary message. Text is a type digit and
    data, or ``"b"`` + base64 for a binary message (unpadded base64 is
    accepted, other invalid base64 is not). Raises :class:`PacketError`.
    """
    if not isinstance(data, str):
        if isinstance(data, _BINARY):
            return Packet(PacketType.MESSAGE, bytes(data))
        raise PacketError(f"a packet is str or bytes, not {type(data).__name__}")
    if not data:
        raise PacketError("empty packet")
    head = data[0]
    if head == "b":
        return Packet(PacketType.MESSAGE, _b64decode(data[1:]))
    packet_type = _BY_DIGIT.get(head)
    if packet_type is None:
        raise PacketError(f"unknown packet type {head!r}")
    return Packet(packet_type, data[1:])


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError as exc:  # binascii.Error, or a non-ASCII character
        raise PacketError(f"invalid base64 in a binary packet: {exc}") from None


class JsonModule(Protocol):
    """What a ``json=`` argument must offer (the ``json`` module does, so do most others).

    ``dumps`` may return ``str`` or UTF-8 ``bytes`` (orjson does).
    """

    def dumps(self, obj: Any, /) -> str | bytes: ...

    def loads(self, s: str, /) -> Any: ...


class _CompactJson:
    """The standard ``json`` module without spaces, as ``JSON.stringify`` writes."""

    @staticmethod
    def dumps(obj: Any, /) -> str:
        return _stdlib_json.dumps(obj, separators=(",", ":"))

    @staticmethod
    def loads(s: str, /) -> Any:
        return _stdlib_json.loads(s)


#: The JSON codec used when none is given.
DEFAULT_JSON: Final[JsonModule] = _CompactJson()
#: What a document the standard json module parses can start with (NaN and Infinity
#: included; digits are never decoded, see decode_message).
_JSON_FIRST_CHARS: Final = frozenset('{["-tfnNI \t\n\r')


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass(frozen=True, slots=True)
class Handshake:
    """The data of the OPEN packet. Times are in seconds here, in ms on the wire.

    ``max_payload`` is ``None`` when the server did not advertise one (old servers).
    """

    sid: str
    upgrades: tuple[str, ...]
    ping_interval: float
    ping_timeout: float
    max_payload: int | None

    def to_packet(self, json: JsonModule = DEFAULT_JSON) -> Packet:
        """The OPEN packet, keys in the reference server's order, times rounded to ms."""
        text = json.dumps(
            {
                "sid": self.sid,
                "upgrades": list(self.upgrades),
                "pingInterval": _ms(self.ping_interval),
                "pingTimeout": _ms(self.ping_timeout),
                "maxPayload": self.max_payload,
            }
        )
        return Packet(PacketType.OPEN, text.decode() if isinstance(text, bytes) else text)

    @classmethod
    def from_packet(cls, packet: Packet, json: JsonModule = DEFAULT_JSON) -> Handshake:
        """Read an OPEN packet; raises :class:`PacketError` if it is not a valid one."""
        if packet.type is not PacketType.OPEN or not isinstance(packet.data, str):
            raise PacketError(f"expected an OPEN packet, got {packet.type.name}")
        try:
            obj = json.loads(packet.data)
        except (ValueError, RecursionError) as exc:
            raise PacketError(f"the OPEN packet is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise PacketError("the OPEN packet is not a JSON object")
        sid, upgrades = obj.get("sid"), obj.get("upgrades", [])
        if not isinstance(sid, str) or not sid:
            raise PacketError("the OPEN packet has no sid")
        if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
            raise PacketError("the OPEN packet's upgrades is not a list of strings")
        max_payload = obj.get("maxPayload")
        if max_payload is not None and not _is_number(max_payload, integer=True):
            raise PacketError("the OPEN packet's maxPayload is not an integer")
        return cls(
            sid=sid,
            upgrades=tuple(upgrades),
            ping_interval=_seconds(obj, "pingInterval"),
            ping_timeout=_seconds(obj, "pingTimeout"),
            max_payload=max_payload,
        )


def _is_number(value: object, *, integer: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        return False
    return 0 <= value < 2**53


def _seconds(obj: dict[str, Any], key: str) -> float:
    value = obj.get(key)
    if not isinstance(value, int | float) or not _is_number(value):
        raise PacketError(f"the OPEN packet's {key} is not a number of milliseconds")
    return value / 1000
