"""What the Engine.IO session cores return: states, disconnect reasons, events.

Events are frozen dataclasses the I/O layer handles in order (see
:mod:`anywire.engineio._session_base` for the writer model).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from anywire.engineio._packets import Handshake, Packet, Transport, encode_frame
from anywire.engineio._payload import encode_payload

__all__ = [
    "Closed",
    "CloseTransport",
    "DisconnectReason",
    "Event",
    "MessageReceived",
    "Opened",
    "RejectRequest",
    "SendPackets",
    "SendProbe",
    "SessionState",
    "UpgradeDone",
    "UpgradeFailed",
]


class SessionState(enum.Enum):
    """OPENING (client, before the OPEN packet) → OPEN ⇄ UPGRADING → CLOSING → CLOSED."""

    OPENING = "opening"
    OPEN = "open"
    UPGRADING = "upgrading"
    CLOSING = "closing"  # ended for the application; the CLOSE packet is still queued
    CLOSED = "closed"


class DisconnectReason(enum.StrEnum):
    """Why a session ended, with python-engineio's strings (``server.reason.*``)."""

    SERVER_DISCONNECT = "server disconnect"
    CLIENT_DISCONNECT = "client disconnect"
    PING_TIMEOUT = "ping timeout"
    TRANSPORT_CLOSE = "transport close"
    TRANSPORT_ERROR = "transport error"


@dataclass(frozen=True, slots=True)
class Opened:
    """Client: the OPEN packet arrived.

    Fire ``connect``; upgrade if :attr:`ClientSession.can_upgrade`.
    """

    handshake: Handshake


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message from the peer: fire ``message`` with ``data``."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class SendPackets:
    """Write ``packets`` on ``transport``, in order.

    Polling: server, answer the parked GET with :meth:`payload` (200,
    ``text/plain; charset=UTF-8``); client, POST it. WebSocket: one frame per
    item of :meth:`frames` (``bytes`` as a binary frame). Then, except for a
    server answering a GET, call ``writer_idle()``.
    """

    packets: tuple[Packet, ...]
    transport: Transport

    def payload(self) -> str:
        """The long-polling body."""
        return encode_payload(self.packets)

    def frames(self) -> list[str | bytes]:
        """The WebSocket frames."""
        return [encode_frame(packet) for packet in self.packets]


@dataclass(frozen=True, slots=True)
class SendProbe:
    """Write this packet as one frame on the WebSocket being probed (no writer_idle)."""

    packet: Packet


@dataclass(frozen=True, slots=True)
class UpgradeDone:
    """The session now runs on the WebSocket; the polling transport is finished."""


@dataclass(frozen=True, slots=True)
class UpgradeFailed:
    """Close the WebSocket being probed; the session goes on over polling."""

    reason: str


@dataclass(frozen=True, slots=True)
class RejectRequest:
    """Answer the current request with ``status`` (close an offered WebSocket instead).

    The session goes on unless a :class:`Closed` follows.
    """

    status: int
    message: str


@dataclass(frozen=True, slots=True)
class Closed:
    """The session ended: fire ``disconnect(reason)`` once; sending now raises.

    ``error`` is the cause when the peer broke a rule or a bound. Packets
    emitted before (and, in state CLOSING, a final CLOSE packet) still go out.
    """

    reason: DisconnectReason
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class CloseTransport:
    """Nothing more to write: close the WebSocket (after writing what came before),
    end any request in flight; the session is CLOSED and can be forgotten."""

    transport: Transport


Event = (
    Opened | MessageReceived | SendPackets | SendProbe | UpgradeDone | UpgradeFailed
    | RejectRequest | Closed | CloseTransport
)  # fmt: skip
