"""What both Engine.IO session cores share: the state table, the bounded queue, closing.

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
from typing import Final

from anywire.engineio._errors import PayloadTooLarge, QueueFull, SessionClosed
from anywire.engineio._packets import (
    PROBE,
    SEPARATOR,
    JsonModule,
    Packet,
    PacketType,
    Transport,
    decode_packet,
    utf8_length,
)
from anywire.engineio._payload import Outbox
from anywire.engineio._session_events import (
    Closed,
    CloseTransport,
    DisconnectReason,
    Event,
    SendPackets,
    SessionState,
    UpgradeFailed,
)
from anywire.errors import LocalProtocolError

__all__ = ["LIVE", "MiB", "NOOP", "PROBE_PING", "PROBE_PONG", "Session", "Trigger"]

MiB: Final = 1024 * 1024


class Trigger(enum.Enum):
    OPENED = enum.auto()
    UPGRADE_START = enum.auto()
    UPGRADE_END = enum.auto()  # done or failed: OPEN on the new or the old transport
    CLOSE = enum.auto()  # ended, a CLOSE packet to deliver
    FINISH = enum.auto()  # nothing left to deliver


S, T = SessionState, Trigger
#: Every transition; anything else is a bug (LocalProtocolError).
_TRANSITIONS: Final[Mapping[SessionState, Mapping[Trigger, SessionState]]] = {
    S.OPENING: {T.OPENED: S.OPEN, T.FINISH: S.CLOSED},
    S.OPEN: {T.UPGRADE_START: S.UPGRADING, T.CLOSE: S.CLOSING, T.FINISH: S.CLOSED},
    S.UPGRADING: {T.UPGRADE_END: S.OPEN, T.CLOSE: S.CLOSING, T.FINISH: S.CLOSED},
    S.CLOSING: {T.FINISH: S.CLOSED},
    S.CLOSED: {},
}
LIVE: Final = frozenset({S.OPEN, S.UPGRADING})
del S, T


class Session:
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
        :class:`~anywire.errors.LocalProtocolError` for text holding ``"\\x1e"`` while on polling.
        A full queue ends the session instead (a :class:`Closed` event).
        """
        if self._state not in LIVE:
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
            timers = (self._close_deadline, *self._closing_timers())
            return min((t for t in timers if t is not None), default=None)
        if self._state in LIVE:
            return min((t for t in self._timers() if t is not None), default=None)
        return None

    def tick(self, now: float) -> list[Event]:
        """Run what is due at ``now``: pings, heartbeat and upgrade timeouts."""
        if self._state is SessionState.CLOSING:
            assert self._close_deadline is not None
            return self._finish() if now >= self._close_deadline else self._closing_tick(now)
        return self._heartbeat(now) if self._state in LIVE else []

    def transport_lost(
        self, transport: Transport, now: float, error: Exception | None = None
    ) -> list[Event]:
        """A transport went away: the WebSocket closed, an HTTP exchange failed.

        The probed WebSocket: the upgrade fails. The current transport: the
        session ends, "transport close" (server, ``error`` is None) or
        "transport error".
        """
        if self._probing() and transport is not self._transport:
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

    def _probing(self) -> bool:
        """Whether a probe transport is in play (a server keeps it while CLOSING)."""
        return self._state is SessionState.UPGRADING

    def _keeps_probe(self, farewell: bool) -> bool:
        """Whether closing while UPGRADING keeps the probe instead of failing it."""
        return False

    def _closing_timers(self) -> tuple[float | None, ...]:
        return ()

    def _closing_tick(self, now: float) -> list[Event]:
        return []

    def _upgrade_ended(self, transport: Transport) -> None:
        self._transport = transport
        self._paused = False
        if self._state is SessionState.UPGRADING:  # else CLOSING with a kept probe
            self._set_state(Trigger.UPGRADE_END)

    def _upgrade_failed(self, reason: str) -> list[Event]:
        self._upgrade_ended(self._transport)
        return [UpgradeFailed(reason), *self._flush()]

    # -- internals ----------------------------------------------------------------

    def _set_state(self, trigger: Trigger) -> None:
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
        if self._state not in LIVE and self._state is not SessionState.OPENING:
            return []
        events: list[Event] = []
        if self._state is SessionState.UPGRADING and not self._keeps_probe(farewell):
            events += self._upgrade_failed("session closed")
        self.close_reason = reason
        events.append(Closed(reason, error))
        if not farewell or self._state is SessionState.OPENING:
            return events + self._on_abort() + self._finish()
        self._queue.push(Packet(PacketType.CLOSE), force=True)
        self._set_state(Trigger.CLOSE)
        self._close_deadline = now + self._close_timeout
        return events + self._flush()

    def _finish(self) -> list[Event]:
        self.unsent = self._queue.messages()
        self._queue.clear()
        self._writable = False
        self._set_state(Trigger.FINISH)
        return [CloseTransport(self._transport)]

    def _decode_frame(self, frame: str | bytes, limit: int | None) -> Packet:
        if limit is not None and len(frame) * 4 > limit:
            size = len(frame) if isinstance(frame, bytes) else utf8_length(frame)
            if size > limit:
                raise PayloadTooLarge(size, limit)
        return decode_packet(frame)


NOOP: Final = Packet(PacketType.NOOP)
PROBE_PING: Final = Packet(PacketType.PING, PROBE)
PROBE_PONG: Final = Packet(PacketType.PONG, PROBE)
