"""Engine.IO sessions as pure state machines: inputs in, events out.

The I/O layer calls a method for each thing that happens (a GET, a POST body,
a WebSocket frame, the clock) and handles the returned events in order. No
method blocks, sleeps or raises for bad peer input: a broken peer becomes a
:class:`Closed` event. Time is a ``float`` of seconds from a monotonic clock
(``anyio.current_time()``), passed as ``now``; call :meth:`tick` at
:meth:`next_deadline`.

The writer model: a session hands out packets only when its transport can take
them. Server on polling: a GET is parked (:meth:`ServerSession.handle_get`).
Otherwise: the writer is idle (:meth:`writer_idle`, after writing the previous
:class:`SendPackets`). In between, packets wait in the session's bounded queue.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from anywire.engineio._errors import (
    PacketError,
    PayloadTooLarge,
    PingTimeout,
    QueueFull,
    SessionClosed,
)
from anywire.engineio._packets import (
    DEFAULT_JSON,
    PROBE,
    SEPARATOR,
    Handshake,
    JsonModule,
    Packet,
    PacketType,
    Transport,
    decode_packet,
    encode_frame,
    utf8_length,
)
from anywire.engineio._payload import Outbox, decode_payload, encode_payload, text_size
from anywire.errors import ConcurrencyError, LimitExceeded, LocalProtocolError, RemoteProtocolError

__all__ = [
    "ClientSession", "Closed", "CloseTransport", "DisconnectReason", "Event", "MessageReceived",
    "Opened", "RejectRequest", "SendPackets", "SendProbe", "ServerConfig", "ServerSession",
    "SessionState", "UpgradeDone", "UpgradeFailed",
]  # fmt: skip


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


class _Trigger(enum.Enum):
    OPENED = enum.auto()
    UPGRADE_START = enum.auto()
    UPGRADE_END = enum.auto()  # done or failed: OPEN on the new or the old transport
    CLOSE = enum.auto()  # ended, a CLOSE packet to deliver
    FINISH = enum.auto()  # nothing left to deliver


S, T = SessionState, _Trigger
#: Every transition; anything else is a bug (LocalProtocolError).
_TRANSITIONS: Final[Mapping[SessionState, Mapping[_Trigger, SessionState]]] = {
    S.OPENING: {T.OPENED: S.OPEN, T.FINISH: S.CLOSED},
    S.OPEN: {T.UPGRADE_START: S.UPGRADING, T.CLOSE: S.CLOSING, T.FINISH: S.CLOSED},
    S.UPGRADING: {T.UPGRADE_END: S.OPEN, T.CLOSE: S.CLOSING, T.FINISH: S.CLOSED},
    S.CLOSING: {T.FINISH: S.CLOSED},
    S.CLOSED: {},
}
_LIVE: Final = frozenset({S.OPEN, S.UPGRADING})
del S, T


@dataclass(frozen=True, slots=True)
class Opened:
    """Client: the OPEN packet arrived. Fire ``connect``; upgrade if :attr:`can_upgrade`."""

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

_MiB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """A server's settings for its sessions; times in seconds.

    The session pings every ``ping_interval`` and advertises ``ping_interval +
    ping_interval_grace`` (python-engineio's ``(interval, grace)`` form).
    ``upgrades`` are the transports a polling session may upgrade to.
    ``close_timeout`` bounds how long a final CLOSE waits for a GET (reference:
    30 s). The outgoing queue holds at most ``max_queue`` packets and
    ``max_queue_bytes``; past either the session ends with "transport error".
    """

    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    ping_interval_grace: float = 0.0
    max_payload: int = 1_000_000
    upgrades: tuple[Transport, ...] = (Transport.WEBSOCKET,)
    upgrade_timeout: float = 10.0
    close_timeout: float = 30.0
    max_queue: int = 1024
    max_queue_bytes: int = 16 * _MiB

    def __post_init__(self) -> None:
        object.__setattr__(self, "upgrades", tuple(Transport(t) for t in self.upgrades))
        for name in ("ping_interval", "ping_timeout", "upgrade_timeout", "close_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.ping_interval_grace < 0:
            raise ValueError("ping_interval_grace must be >= 0")
        for name in ("max_payload", "max_queue", "max_queue_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


class _Session:
    """What both sides share: the state table, the bounded queue, closing."""

    def __init__(
        self,
        transport: Transport,
        state: SessionState,
        *,
        json: JsonModule,
        max_queue: int,
        max_queue_bytes: int,
        close_timeout: float,
    ) -> None:
        self._state = state
        self._transport = transport
        self._json = json
        self._close_timeout = close_timeout
        self._queue = Outbox(max_queue, max_queue_bytes)
        self._writable = False  # the transport can take a batch now
        self._paused = False  # probe answered: polling must stay quiet until the switch
        self._batch_limit: int | None = None
        self._batch_packets: int | None = None  # at most this many packets per POST
        self._close_deadline: float | None = None
        self.close_reason: DisconnectReason | None = None
        #: The messages still queued when the session finished without sending them.
        self.unsent: tuple[str | bytes, ...] = ()

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def transport(self) -> Transport:
        """The transport in use (``WEBSOCKET`` from :class:`UpgradeDone` on)."""
        return self._transport

    @property
    def queued(self) -> tuple[int, int]:
        """Packets and bytes waiting in the outgoing queue (bounded by ``max_queue*``)."""
        return len(self._queue), self._queue.nbytes

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self._state.name} {self._transport.value}"
            f" queued={len(self._queue)}>"
        )

    def send_message(self, data: str | bytes, now: float) -> list[Event]:
        """Queue a message (``str`` text, ``bytes`` binary). See :meth:`send_packet`."""
        return self.send_packet(Packet(PacketType.MESSAGE, data), now)

    def send_packet(self, packet: Packet, now: float) -> list[Event]:
        """Queue a packet; returns :class:`SendPackets` if the transport can take it now.

        Raises :class:`SessionClosed` once the session ended, and
        :class:`LocalProtocolError` for text holding ``"\\x1e"`` while on polling.
        A full queue ends the session instead (a :class:`Closed` event).
        """
        if self._state not in _LIVE:
            if self._state is SessionState.OPENING:
                raise LocalProtocolError("the session is not open yet")
            raise SessionClosed(self.close_reason or "closed")
        self._check_outgoing(packet)
        return self._enqueue(packet, now)

    def writer_idle(self, now: float) -> list[Event]:
        """The writer can take packets: a WebSocket accepted or done with the last batch,
        a client POST answered. Returns the next :class:`SendPackets`, if any."""
        if self._state is SessionState.CLOSED:
            return []
        self._writable = True
        return self._flush()

    def close(
        self, now: float, *, reason: DisconnectReason | None = None, abort: bool = False
    ) -> list[Event]:
        """End the session: queued packets then a CLOSE packet go out, unless ``abort``."""
        default = self._own_close_reason
        return self._close(reason or default, now, farewell=not abort)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do (``None``: nothing scheduled)."""
        if self._state is SessionState.CLOSING:
            return self._close_deadline
        if self._state in _LIVE:
            return min((t for t in self._timers() if t is not None), default=None)
        return None

    def tick(self, now: float) -> list[Event]:
        """Run what is due at ``now``: pings, heartbeat and upgrade timeouts."""
        if self._state is SessionState.CLOSING:
            assert self._close_deadline is not None
            return self._finish() if now >= self._close_deadline else []
        return self._heartbeat(now) if self._state in _LIVE else []

    def transport_lost(
        self, transport: Transport, now: float, error: Exception | None = None
    ) -> list[Event]:
        """A transport went away: the WebSocket closed, an HTTP exchange failed.

        The probed WebSocket: the upgrade fails. The current transport: the
        session ends, "transport close" (server, ``error`` is None) or
        "transport error".
        """
        if self._state is SessionState.UPGRADING and transport is not self._transport:
            return self._upgrade_failed("probe transport closed")
        if transport is not self._transport or self._state is SessionState.CLOSED:
            return []
        if self._state is SessionState.CLOSING:
            return self._finish()
        return self._close(self._lost_reason(error), now, error=error, farewell=False)

    # -- subclass hooks -----------------------------------------------------------

    _own_close_reason: DisconnectReason

    def _timers(self) -> tuple[float | None, ...]:
        raise NotImplementedError

    def _heartbeat(self, now: float) -> list[Event]:
        raise NotImplementedError

    def _lost_reason(self, error: Exception | None) -> DisconnectReason:
        return DisconnectReason.TRANSPORT_ERROR

    def _on_abort(self) -> list[Event]:
        return []

    def _upgrade_ended(self, transport: Transport) -> None:
        self._transport = transport
        self._paused = False
        self._set_state(_Trigger.UPGRADE_END)

    def _upgrade_failed(self, reason: str) -> list[Event]:
        self._upgrade_ended(self._transport)
        return [UpgradeFailed(reason), *self._flush()]

    # -- internals ----------------------------------------------------------------

    def _set_state(self, trigger: _Trigger) -> None:
        try:
            self._state = _TRANSITIONS[self._state][trigger]
        except KeyError:
            msg = f"no transition from {self._state.name} on {trigger.name}"
            raise LocalProtocolError(msg) from None

    def _check_outgoing(self, packet: Packet) -> None:
        data = packet.data
        if self._transport is Transport.POLLING and isinstance(data, str) and SEPARATOR in data:
            raise LocalProtocolError("text data holds the record separator \\x1e")

    def _enqueue(self, packet: Packet, now: float) -> list[Event]:
        queue = self._queue
        if self._writable and not queue and not self._paused:  # the hot path
            self._writable = False
            return [SendPackets((packet,), self._transport)]
        if not queue.push(packet):
            bounds = f"{queue.max_packets} packets, {queue.max_bytes} bytes"
            error = QueueFull(f"outgoing queue full ({bounds})", limit=queue.max_packets)
            queue.clear()
            return self._close(DisconnectReason.TRANSPORT_ERROR, now, error=error)
        return self._flush()

    def _flush(self) -> list[Event]:
        if not (self._writable and self._queue) or self._paused:
            return []
        polling = self._transport is Transport.POLLING
        if polling:
            packets = self._queue.take(self._batch_limit, self._batch_packets)
        else:
            packets = self._queue.take(None)
        self._writable = False
        events: list[Event] = [SendPackets(packets, self._transport)]
        if self._state is SessionState.CLOSING and not self._queue:
            events += self._finish()
        return events

    def _close(
        self,
        reason: DisconnectReason,
        now: float,
        *,
        error: Exception | None = None,
        farewell: bool = True,
    ) -> list[Event]:
        if self._state not in _LIVE and self._state is not SessionState.OPENING:
            return []
        events: list[Event] = []
        if self._state is SessionState.UPGRADING:
            events += self._upgrade_failed("session closed")
        self.close_reason = reason
        events.append(Closed(reason, error))
        if not farewell or self._state is SessionState.OPENING:
            return events + self._on_abort() + self._finish()
        self._queue.push(Packet(PacketType.CLOSE), force=True)
        self._set_state(_Trigger.CLOSE)
        self._close_deadline = now + self._close_timeout
        return events + self._flush()

    def _finish(self) -> list[Event]:
        self.unsent = self._queue.messages()
        self._queue.clear()
        self._writable = False
        self._set_state(_Trigger.FINISH)
        return [CloseTransport(self._transport)]

    def _decode_frame(self, frame: str | bytes, limit: int | None) -> Packet:
        if limit is not None and len(frame) * 4 > limit:
            size = len(frame) if isinstance(frame, bytes) else utf8_length(frame)
            if size > limit:
                raise PayloadTooLarge(size, limit)
        return decode_packet(frame)


_NOOP: Final = Packet(PacketType.NOOP)
_PROBE_PING: Final = Packet(PacketType.PING, PROBE)
_PROBE_PONG: Final = Packet(PacketType.PONG, PROBE)


class ServerSession(_Session):
    """The server side of one Engine.IO session (one ``sid``).

    Created when a handshake request is accepted, with the OPEN packet queued.
    Polling: answer the handshake GET with :meth:`handle_get`. WebSocket: call
    :meth:`writer_idle` once the application accepted the connection.
    """

    _own_close_reason = DisconnectReason.SERVER_DISCONNECT

    def __init__(
        self,
        sid: str,
        transport: Transport,
        *,
        now: float,
        config: ServerConfig | None = None,
        json: JsonModule = DEFAULT_JSON,
    ) -> None:
        config = config or ServerConfig()
        super().__init__(
            transport,
            SessionState.OPEN,
            json=json,
            max_queue=config.max_queue,
            max_queue_bytes=config.max_queue_bytes,
            close_timeout=config.close_timeout,
        )
        self.sid = sid
        self.config = config
        self._batch_limit = config.max_payload
        polling = transport is Transport.POLLING
        self.handshake = Handshake(
            sid=sid,
            upgrades=tuple(t.value for t in config.upgrades if polling and t is not transport),
            ping_interval=config.ping_interval + config.ping_interval_grace,
            ping_timeout=config.ping_timeout,
            max_payload=config.max_payload,
        )
        self._queue.push(self.handshake.to_packet(json), force=True)
        self._next_ping: float | None = now + config.ping_interval
        self._pong_deadline: float | None = None
        self._upgrade_deadline: float | None = None
        self._post_active = False

    def handle_get(self, now: float) -> list[Event]:
        """A polling GET arrived. It is answered by a :class:`SendPackets` in these
        events or, if none, by the next one any call returns (the GET is parked).

        A second GET while one is parked ends the session ("transport error"; the
        parked one gets the CLOSE packet) and is rejected with 400, as the
        reference does. A GET to a session on WebSocket gets 400, nothing more.
        """
        if refused := self._refuse_polling():
            return refused
        if self._writable:
            error = RemoteProtocolError("overlap from client", hint=400)
            reject = RejectRequest(400, "overlap from client")
            return [reject, *self._close(DisconnectReason.TRANSPORT_ERROR, now, error=error)]
        if self._paused:  # probed: the packets wait for the WebSocket
            return [SendPackets((_NOOP,), Transport.POLLING)]
        self._writable = True
        return self._flush()

    def writer_idle(self, now: float) -> list[Event]:
        """The WebSocket can take packets: once the application accepted a direct
        WebSocket, then after writing each :class:`SendPackets`. On polling a GET
        takes packets: call :meth:`handle_get` instead."""
        if self._transport is Transport.POLLING:
            raise LocalProtocolError("a polling session writes to GETs: call handle_get()")
        return super().writer_idle(now)

    def begin_post(self, now: float) -> list[Event]:
        """A polling POST arrived (call before reading its body; optional).

        A second POST while one is in flight is rejected with 400 and ends
        the session ("transport error"), as the reference does.
        """
        if refused := self._refuse_polling():
            return refused
        if self._post_active and self._state in _LIVE:
            error = RemoteProtocolError("data request overlap from client", hint=400)
            reject = RejectRequest(400, "data request overlap from client")
            return [reject, *self._close(DisconnectReason.TRANSPORT_ERROR, now, error=error)]
        self._post_active = True
        return []

    def handle_post(self, body: str | bytes, now: float) -> list[Event]:
        """The body of a polling POST (read at most ``max_payload`` + 1 bytes of it).

        Answer 200 ``ok`` unless a :class:`RejectRequest` is among the events:
        413 past ``max_payload``, 400 for a payload that does not parse; both
        end the session with "transport error".
        """
        self._post_active = False
        if refused := self._refuse_polling():
            return refused
        if self._state not in _LIVE:
            return []
        try:
            packets = decode_payload(body, max_payload=self.config.max_payload)
        except PacketError as exc:
            reject = RejectRequest(exc.hint or 400, str(exc))
            return [reject, *self._close(DisconnectReason.TRANSPORT_ERROR, now, error=exc)]
        events: list[Event] = []
        for packet in packets:
            events += self._receive(packet, now)
            if self._state not in _LIVE:
                break
        return events

    def begin_upgrade(self, now: float) -> list[Event]:
        """A WebSocket for this ``sid`` arrived. Accept it unless a
        :class:`RejectRequest` comes back, then feed its frames to :meth:`receive_frame`."""
        if self._state is not SessionState.OPEN or self._transport is not Transport.POLLING:
            return [RejectRequest(400, "Session is upgrading or upgraded")]
        if Transport.WEBSOCKET not in self.config.upgrades:
            return [RejectRequest(400, "Upgrades are disabled")]
        self._set_state(_Trigger.UPGRADE_START)
        self._upgrade_deadline = now + self.config.upgrade_timeout
        return []

    def receive_frame(self, frame: str | bytes, now: float) -> list[Event]:
        """A WebSocket frame: on the probe while UPGRADING, else on the session's WebSocket.

        A frame that does not parse or is longer than ``max_payload`` ends the
        session with "transport error" (on the probe: the upgrade fails).
        """
        if self._state is SessionState.UPGRADING:
            return self._probe_frame(frame)
        if self._transport is not Transport.WEBSOCKET or self._state is not SessionState.OPEN:
            return []
        try:
            packet = self._decode_frame(frame, self.config.max_payload)
        except PacketError as exc:
            return self._close(DisconnectReason.TRANSPORT_ERROR, now, error=exc)
        return self._receive(packet, now)

    def _probe_frame(self, frame: str | bytes) -> list[Event]:
        try:
            packet = self._decode_frame(frame, self.config.max_payload)
        except PacketError:
            return self._upgrade_failed("invalid packet on the probe")
        if packet == _PROBE_PING:
            self._paused = True
            return [SendProbe(_PROBE_PONG), *self._release_poll()]
        if packet.type is not PacketType.UPGRADE:
            return self._upgrade_failed(f"unexpected {packet.type.name} on the probe")
        events = self._release_poll()
        self._upgrade_ended(Transport.WEBSOCKET)
        self._upgrade_deadline = None
        self._writable = True  # it wrote only "3probe", which the client has read
        return [*events, UpgradeDone(), *self._flush()]

    def _refuse_polling(self) -> list[Event]:
        if self._state is SessionState.CLOSED:
            return [RejectRequest(400, "Session is closed")]
        if self._transport is not Transport.POLLING:
            return [RejectRequest(400, "Invalid transport")]
        return []

    def _release_poll(self) -> list[Event]:
        if self._writable and self._transport is Transport.POLLING:
            self._writable = False
            return [SendPackets((_NOOP,), Transport.POLLING)]
        return []

    def _receive(self, packet: Packet, now: float) -> list[Event]:
        kind = packet.type
        if kind is PacketType.MESSAGE:
            assert packet.data is not None
            return [MessageReceived(packet.data)]
        if kind is PacketType.PONG:
            self._pong_deadline = None
            self._next_ping = now + self.config.ping_interval  # the reference's refresh()
            return []
        if kind is PacketType.CLOSE:
            return self._close(DisconnectReason.CLIENT_DISCONNECT, now, farewell=False)
        if kind is PacketType.PING:
            error = RemoteProtocolError("invalid heartbeat direction", hint=400)
            return self._close(DisconnectReason.TRANSPORT_ERROR, now, error=error)
        return []  # OPEN, UPGRADE, NOOP: ignored, as the reference does

    def _timers(self) -> tuple[float | None, ...]:
        return (self._next_ping, self._pong_deadline, self._upgrade_deadline)

    def _heartbeat(self, now: float) -> list[Event]:
        if self._pong_deadline is not None and now >= self._pong_deadline:
            error = PingTimeout(f"no PONG within {self.config.ping_timeout} s")
            return self._close(DisconnectReason.PING_TIMEOUT, now, error=error)
        events: list[Event] = []
        if self._upgrade_deadline is not None and now >= self._upgrade_deadline:
            self._upgrade_deadline = None
            events += self._upgrade_failed("upgrade timeout")
        if self._next_ping is not None and now >= self._next_ping:
            self._next_ping = None
            self._pong_deadline = now + self.config.ping_timeout
            events += self._enqueue(Packet(PacketType.PING), now)
        return events

    def _lost_reason(self, error: Exception | None) -> DisconnectReason:
        if error is None:
            return DisconnectReason.TRANSPORT_CLOSE
        return DisconnectReason.TRANSPORT_ERROR

    def _on_abort(self) -> list[Event]:
        return self._release_poll()  # the reference answers a parked GET with a NOOP

    def _upgrade_failed(self, reason: str) -> list[Event]:
        self._upgrade_deadline = None
        return super()._upgrade_failed(reason)


class ClientSession(_Session):
    """The client side of one Engine.IO session.

    Starts OPENING: feed the handshake GET's body to :meth:`receive_payload`
    (polling) or the first frame to :meth:`receive_frame` (WebSocket) and get
    :class:`Opened`; the writer is then idle (a send returns :class:`SendPackets`
    to POST or write; call :meth:`writer_idle` when done). Polling runs ``while
    session.begin_poll(now):`` GET, :meth:`receive_payload`. The server pings;
    the session answers, and ends with "transport error" when no PING comes
    within pingInterval + pingTimeout. A POST carries at most
    ``max_batch_packets`` packets (python-engineio's server refuses more than 16).
    """

    _own_close_reason = DisconnectReason.CLIENT_DISCONNECT

    def __init__(
        self,
        transport: Transport,
        *,
        now: float,
        json: JsonModule = DEFAULT_JSON,
        max_queue: int = 1024,
        max_queue_bytes: int = 16 * _MiB,
        close_timeout: float = 30.0,
        max_batch_packets: int | None = 16,
    ) -> None:
        super().__init__(
            transport,
            SessionState.OPENING,
            json=json,
            max_queue=max_queue,
            max_queue_bytes=max_queue_bytes,
            close_timeout=close_timeout,
        )
        self.handshake: Handshake | None = None
        self._ping_deadline: float | None = None
        self._poll_active = False
        self._batch_packets = max_batch_packets

    @property
    def sid(self) -> str | None:
        """The session id, once open."""
        return self.handshake.sid if self.handshake else None

    @property
    def can_upgrade(self) -> bool:
        """Whether the server offers an upgrade to WebSocket from this polling session."""
        return (
            self._state is SessionState.OPEN
            and self._transport is Transport.POLLING
            and self.handshake is not None
            and Transport.WEBSOCKET.value in self.handshake.upgrades
        )

    def begin_poll(self, now: float) -> bool:
        """Whether to send the next polling GET now (it is then in flight until
        :meth:`receive_payload`). False when paused for an upgrade, upgraded or closed."""
        if self._poll_active:
            raise ConcurrencyError("a polling GET is already in flight")
        if self._state not in _LIVE or self._transport is not Transport.POLLING or self._paused:
            return False
        self._poll_active = True
        return True

    def receive_payload(self, body: str | bytes, now: float) -> list[Event]:
        """The body of a polling GET response (the handshake GET's first)."""
        self._poll_active = False
        live = self._state in _LIVE or self._state is SessionState.OPENING
        if not live or self._transport is not Transport.POLLING:
            return []
        try:
            packets = decode_payload(body)
        except PacketError as exc:
            return self._close(DisconnectReason.TRANSPORT_ERROR, now, error=exc, farewell=False)
        events: list[Event] = []
        for packet in packets:
            events += self._receive(packet, now)
            if self._state not in _LIVE:
                return events
        return events + self._maybe_switch()

    def receive_frame(self, frame: str | bytes, now: float) -> list[Event]:
        """A WebSocket frame: of the probe while UPGRADING, else of the session's WebSocket."""
        if self._state is SessionState.UPGRADING and self._transport is Transport.POLLING:
            return self._probe_frame(frame)
        if self._transport is not Transport.WEBSOCKET:
            return []
        if self._state not in _LIVE and self._state is not SessionState.OPENING:
            return []
        try:
            packet = decode_packet(frame)
        except PacketError as exc:
            return self._close(DisconnectReason.TRANSPORT_ERROR, now, error=exc, farewell=False)
        return self._receive(packet, now)

    def start_upgrade(self, now: float) -> list[Event]:
        """The WebSocket for the upgrade is connected (``sid`` in its URL): send the probe.

        Polling goes on until the server's ``3probe``; then the session waits
        for the GET and POST in flight, and switches (:class:`UpgradeDone`).
        """
        if not self.can_upgrade:
            raise LocalProtocolError(f"cannot upgrade in state {self._state.name}")
        self._set_state(_Trigger.UPGRADE_START)
        return [SendProbe(_PROBE_PING)]

    def writer_idle(self, now: float) -> list[Event]:
        return super().writer_idle(now) + self._maybe_switch()

    def _probe_frame(self, frame: str | bytes) -> list[Event]:
        try:
            packet = decode_packet(frame)
        except PacketError:
            return self._upgrade_failed("probe error")
        if self._paused or packet != _PROBE_PONG:
            return self._upgrade_failed("probe error")
        self._paused = True
        return self._maybe_switch()

    def _maybe_switch(self) -> list[Event]:
        if not (self._paused and self._writable) or self._poll_active:
            return []
        self._upgrade_ended(Transport.WEBSOCKET)
        self._writable = False  # the UPGRADE packet first, then writer_idle()
        return [SendPackets((Packet(PacketType.UPGRADE),), Transport.WEBSOCKET), UpgradeDone()]

    def _receive(self, packet: Packet, now: float) -> list[Event]:
        if self._state is SessionState.OPENING:
            return self._open(packet, now)
        kind = packet.type
        if kind is PacketType.MESSAGE:
            assert packet.data is not None
            return [MessageReceived(packet.data)]
        if kind is PacketType.PING:
            self._reset_heartbeat(now)
            return self._enqueue(Packet(PacketType.PONG), now)
        if kind is PacketType.CLOSE:
            return self._close(DisconnectReason.SERVER_DISCONNECT, now, farewell=False)
        return []  # OPEN again, PONG, UPGRADE, NOOP: ignored, as the reference does

    def _open(self, packet: Packet, now: float) -> list[Event]:
        try:
            handshake = Handshake.from_packet(packet, self._json)
        except PacketError as exc:
            return self._close(DisconnectReason.TRANSPORT_ERROR, now, error=exc, farewell=False)
        self.handshake = handshake
        self._batch_limit = handshake.max_payload
        self._set_state(_Trigger.OPENED)
        self._reset_heartbeat(now)
        self._writable = True
        return [Opened(handshake)]

    def _reset_heartbeat(self, now: float) -> None:
        assert self.handshake is not None
        self._ping_deadline = now + self.handshake.ping_interval + self.handshake.ping_timeout

    def _check_outgoing(self, packet: Packet) -> None:
        super()._check_outgoing(packet)
        limit = self._batch_limit
        polling = self._transport is Transport.POLLING
        size = text_size(packet) if polling else packet.wire_size()
        if limit is not None and size > limit:
            raise LimitExceeded(f"packet of {size} bytes exceeds maxPayload {limit}", limit=limit)

    def _timers(self) -> tuple[float | None, ...]:
        return (self._ping_deadline,)

    def _heartbeat(self, now: float) -> list[Event]:
        if self._ping_deadline is None or now < self._ping_deadline:
            return []
        error = PingTimeout("no PING from the server within pingInterval + pingTimeout")
        return self._close(DisconnectReason.TRANSPORT_ERROR, now, error=error, farewell=False)
