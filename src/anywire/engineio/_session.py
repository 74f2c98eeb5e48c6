"""Engine.IO sessions as pure state machines: inputs in, events out.

How the I/O layer drives a session (a method per input, the events handled in
order, the clock passed in as ``now``, the writer model) is described in
``_session_base``, beside the :class:`Session` base that implements it.

This module holds the client side (:class:`ClientSession`) and re-exports the
other session names: the states and events (``_session_events``), the shared
base (``_session_base``) and the server side (``_server_session``).
"""

from __future__ import annotations

from anywire.engineio._errors import PacketError, PingTimeout
from anywire.engineio._packets import (
    DEFAULT_JSON,
    Handshake,
    JsonModule,
    Packet,
    PacketType,
    Transport,
    decode_packet,
)
from anywire.engineio._payload import decode_payload, text_size
from anywire.engineio._server_session import ServerConfig, ServerSession
from anywire.engineio._session_base import LIVE, PROBE_PING, PROBE_PONG, MiB, Session, Trigger
from anywire.engineio._session_events import (
    Closed,
    CloseTransport,
    DisconnectReason,
    Event,
    MessageReceived,
    Opened,
    RejectRequest,
    SendPackets,
    SendProbe,
    SessionState,
    UpgradeDone,
    UpgradeFailed,
)
from anywire.errors import ConcurrencyError, LimitExceeded, LocalProtocolError

__all__ = [
    "ClientSession", "Closed", "CloseTransport", "DisconnectReason", "Event", "MessageReceived",
    "Opened", "RejectRequest", "SendPackets", "SendProbe", "ServerConfig", "ServerSession",
    "SessionState", "UpgradeDone", "UpgradeFailed",
]  # fmt: skip


class ClientSession(Session):
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
        max_queue_bytes: int = 16 * MiB,
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
        if self._state not in LIVE or self._transport is not Transport.POLLING or self._paused:
            return False
        self._poll_active = True
        return True

    def receive_payload(self, body: str | bytes, now: float) -> list[Event]:
        """The body of a polling GET response (the handshake GET's first)."""
        self._poll_active = False
        live = self._state in LIVE or self._state is SessionState.OPENING
        if not live or self._transport is not Transport.POLLING:
            return []
        try:
            packets = decode_payload(body)
        except PacketError as exc:
            return self._close(DisconnectReason.TRANSPORT_ERROR, now, error=exc, farewell=False)
        events: list[Event] = []
        for packet in packets:
            events += self._receive(packet, now)
            if self._state not in LIVE:
                return events
        return events + self._maybe_switch()

    def receive_frame(self, frame: str | bytes, now: float) -> list[Event]:
        """A WebSocket frame: of the probe while UPGRADING, else of the session's WebSocket."""
        if self._state is SessionState.UPGRADING and self._transport is Transport.POLLING:
            return self._probe_frame(frame)
        if self._transport is not Transport.WEBSOCKET:
            return []
        if self._state not in LIVE and self._state is not SessionState.OPENING:
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
        self._set_state(Trigger.UPGRADE_START)
        return [SendProbe(PROBE_PING)]

    def writer_idle(self, now: float) -> list[Event]:
        return super().writer_idle(now) + self._maybe_switch()

    def _probe_frame(self, frame: str | bytes) -> list[Event]:
        try:
            packet = decode_packet(frame)
        except PacketError:
            return self._upgrade_failed("probe error")
        if self._paused or packet != PROBE_PONG:
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
        self._set_state(Trigger.OPENED)
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
