"""The server side of one Engine.IO session, a pure state machine (see :mod:`._session_base`)."""

from __future__ import annotations

from dataclasses import dataclass

from anywire.engineio._errors import PacketError, PingTimeout
from anywire.engineio._packets import (
    DEFAULT_JSON,
    Handshake,
    JsonModule,
    Packet,
    PacketType,
    Transport,
)
from anywire.engineio._payload import decode_payload, text_size
from anywire.engineio._session_base import LIVE, NOOP, PROBE_PING, PROBE_PONG, MiB, Session, Trigger
from anywire.engineio._session_events import (
    DisconnectReason,
    Event,
    MessageReceived,
    RejectRequest,
    SendPackets,
    SendProbe,
    SessionState,
    UpgradeDone,
)
from anywire.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["ServerConfig", "ServerSession"]


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
    max_queue_bytes: int = 16 * MiB

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


class ServerSession(Session):
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
            return [SendPackets((NOOP,), Transport.POLLING)]
        self._writable = True
        return self._flush()

    def poll_more(
        self, sent: tuple[Packet, ...], now: float
    ) -> tuple[tuple[Packet, ...], list[Event]]:
        """Packets queued since ``sent`` answered a GET, to write with them.

        For a GET answered (:class:`SendPackets`) but not yet written: what was
        queued since joins its payload, as far as ``max_payload`` allows.
        Returns those packets and the events that follow them (the session
        finishing, when the CLOSE packet was among them).
        """
        queue = self._queue
        if not queue or self._writable or self._paused or self._transport is not Transport.POLLING:
            return (), []
        room = self.config.max_payload - (len(sent) - 1 + sum(text_size(p) for p in sent))
        if 1 + text_size(queue.peek()) > room:
            return (), []
        packets = queue.take(room - 1)
        if self._state is SessionState.CLOSING and not queue:
            return packets, self._finish()
        return packets, []

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
        if self._post_active and self._state in LIVE:
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
        if self._state not in LIVE:
            return []
        try:
            packets = decode_payload(body, max_payload=self.config.max_payload)
        except PacketError as exc:
            reject = RejectRequest(exc.hint or 400, str(exc))
            return [reject, *self._close(DisconnectReason.TRANSPORT_ERROR, now, error=exc)]
        events: list[Event] = []
        for packet in packets:
            events += self._receive(packet, now)
            if self._state not in LIVE:
                break
        return events

    def begin_upgrade(self, now: float) -> list[Event]:
        """A WebSocket for this ``sid`` arrived. Accept it unless a
        :class:`RejectRequest` comes back, then feed its frames to :meth:`receive_frame`."""
        if self._state is not SessionState.OPEN or self._transport is not Transport.POLLING:
            return [RejectRequest(400, "Session is upgrading or upgraded")]
        if Transport.WEBSOCKET not in self.config.upgrades:
            return [RejectRequest(400, "Upgrades are disabled")]
        self._set_state(Trigger.UPGRADE_START)
        self._upgrade_deadline = now + self.config.upgrade_timeout
        return []

    def receive_frame(self, frame: str | bytes, now: float) -> list[Event]:
        """A WebSocket frame: on the probe while UPGRADING, else on the session's WebSocket.

        A frame that does not parse or is longer than ``max_payload`` ends the
        session with "transport error" (on the probe: the upgrade fails).
        """
        limit = self.config.max_payload
        if self._state is SessionState.OPEN and self._transport is Transport.WEBSOCKET:
            # The hot path: a message short enough to need no size count.
            kind = frame.__class__
            if kind is str and frame[:1] == "4" and len(frame) * 4 <= limit:
                return [MessageReceived(frame[1:])]
            if kind is bytes and len(frame) <= limit:
                return [MessageReceived(frame)]
        elif self._probing():
            return self._probe_frame(frame)
        else:
            return []
        try:
            packet = self._decode_frame(frame, limit)
        except PacketError as exc:
            return self._close(DisconnectReason.TRANSPORT_ERROR, now, error=exc)
        return self._receive(packet, now)

    def _probe_frame(self, frame: str | bytes) -> list[Event]:
        try:
            packet = self._decode_frame(frame, self.config.max_payload)
        except PacketError:
            return self._upgrade_failed("invalid packet on the probe")
        if packet == PROBE_PING:
            self._paused = True
            return [SendProbe(PROBE_PONG), *self._release_poll()]
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
            return [SendPackets((NOOP,), Transport.POLLING)]
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

    # A close after "3probe" races the client's "5": the client may have switched
    # already and will never poll again. The probe is kept: its "5" completes the
    # upgrade and the CLOSE goes out on the WebSocket; if the probe fails or times
    # out instead, the CLOSE waits for a GET as usual.

    def _probing(self) -> bool:
        state = self._state
        return state is SessionState.UPGRADING or (state is SessionState.CLOSING and self._paused)

    def _keeps_probe(self, farewell: bool) -> bool:
        return farewell and self._paused

    def _closing_timers(self) -> tuple[float | None, ...]:
        return (self._upgrade_deadline,)

    def _closing_tick(self, now: float) -> list[Event]:
        if self._upgrade_deadline is not None and now >= self._upgrade_deadline:
            return self._upgrade_failed("upgrade timeout")
        return []
