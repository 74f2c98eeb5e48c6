"""One server session on anyio: the sans-I/O :class:`ServerSession` plus its I/O state.

A :class:`Conn` turns the core's events into I/O: parked polling GETs are
:class:`PollWaiter` objects answered by ``SendPackets``; a WebSocket has an
:class:`Outbox` drained by one writer task; the heartbeat runs in one timer
task per session: it sleeps until ``ServerSession.next_deadline()`` and
looks again when it wakes (a deadline that moved later costs one early
wake-up; one that moved earlier pulls the sleep in), so a timeout fires at
the deadline, not at a sweep, and a message costs no timer work. Handler
calls (``message``, ``disconnect``) are handed back to the caller, which
runs them: the core never waits for the application.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from anywire.engineio._packets import Packet, PacketType, Transport, encode_text
from anywire.engineio._payload import encode_payload
from anywire.engineio._server_session import ServerSession
from anywire.engineio._session_events import (
    Closed,
    CloseTransport,
    DisconnectReason,
    Event,
    MessageReceived,
    RejectRequest,
    SendPackets,
    SendProbe,
    SessionState,
    UpgradeDone,
    UpgradeFailed,
)

__all__ = ["Conn", "HandlerCall", "Outbox", "PollWaiter"]

_CLOSE_BODY = encode_text(Packet(PacketType.CLOSE))
_NO_CALLS: list[HandlerCall] = []  # never appended to


@dataclass(frozen=True, slots=True)
class HandlerCall:
    """An application event to fire: ``("message", data)`` or ``("disconnect", reason)``."""

    event: str
    arg: Any


class PollWaiter:
    """A parked polling GET: ``packets`` (or a final ``body``) are set once they arrive.

    The GET's task waits for its client to leave inside ``scope``; an answer
    cancels that wait (no second task, no event per request). Packets are
    encoded only when the task writes them (:meth:`Conn.poll_body`), so those
    sent in between join the same response.
    """

    __slots__ = ("body", "packets", "scope")

    def __init__(self) -> None:
        self.packets: tuple[Packet, ...] | None = None
        self.body: str | None = None
        self.scope: anyio.CancelScope | None = None

    @property
    def answered(self) -> bool:
        return self.packets is not None or self.body is not None

    def deliver(self, packets: tuple[Packet, ...]) -> None:
        self.packets = packets
        self._wake()

    def answer(self, body: str) -> None:
        if not self.answered:
            self.body = body
            self._wake()

    def _wake(self) -> None:
        if self.scope is not None:
            self.scope.cancel()


@dataclass(slots=True)
class Outbox:
    """What one WebSocket's writer has to do: batches of frames, then maybe a close.

    ``items`` holds ``(frames, is_batch)``; after writing a batch the writer
    calls ``writer_idle`` on the session (never after the probe's ``3probe``).
    """

    items: deque[tuple[list[str | bytes], bool]] = field(default_factory=deque)
    closing: bool = False
    wake: anyio.Event = field(default_factory=anyio.Event)

    def put(self, frames: list[str | bytes], is_batch: bool) -> None:
        self.items.append((frames, is_batch))
        self.wake.set()

    def close(self) -> None:
        self.closing = True
        self.wake.set()

    async def wait(self) -> None:
        while not self.items and not self.closing:
            self.wake = anyio.Event()
            await self.wake.wait()


class Conn:
    """A server session and its transports. Every method is synchronous except
    :meth:`run_timer`; the returned :class:`HandlerCall` list must be run by the caller."""

    def __init__(self, core: ServerSession, environ: dict[str, Any]) -> None:
        self.core = core
        self.sid = core.sid
        self.environ = environ
        self.user_session: dict[str, Any] = {}
        self.polls: deque[PollWaiter] = deque()
        self.ws_outbox: Outbox | None = None  # the session's WebSocket, once on it
        self.probe_outbox: Outbox | None = None  # the WebSocket being probed
        self.finished = anyio.Event()
        self.closed_reason: DisconnectReason | None = None
        self._timer_scope: anyio.CancelScope | None = None
        self._timer_at = math.inf  # when the timer wakes up
        self.on_finish: Callable[[Conn], None] = lambda conn: None

    def __repr__(self) -> str:
        return f"<Conn {self.sid} {self.core!r}>"

    @property
    def transport(self) -> Transport:
        return self.core.transport

    def apply(self, events: list[Event]) -> tuple[list[HandlerCall], RejectRequest | None]:
        """Do what ``events`` say; return the handler calls and the request's refusal."""
        if len(events) == 1 and events[0].__class__ is SendPackets:  # the hot path
            self._send(events[0])
            return _NO_CALLS, None
        calls: list[HandlerCall] = []
        reject: RejectRequest | None = None
        for event in events:
            if isinstance(event, MessageReceived):
                calls.append(HandlerCall("message", event.data))
            elif isinstance(event, SendPackets):
                self._send(event)
            elif isinstance(event, RejectRequest):
                reject = reject or event
            elif isinstance(event, Closed):
                self.closed_reason = event.reason
                calls.append(HandlerCall("disconnect", event.reason))
            else:
                self._transport_event(event)
        self._reschedule()
        return calls, reject

    def _send(self, event: SendPackets) -> None:
        if event.transport is Transport.POLLING:
            while self.polls:
                waiter = self.polls.popleft()
                if not waiter.answered:
                    waiter.deliver(event.packets)
                    return
            return  # the core only emits this with a GET parked; nothing to answer
        if self.ws_outbox is not None:
            self.ws_outbox.put(event.frames(), True)

    def _transport_event(self, event: Event) -> None:
        if isinstance(event, SendProbe):
            if self.probe_outbox is not None:
                self.probe_outbox.put([encode_text(event.packet)], False)
        elif isinstance(event, UpgradeDone):
            self.ws_outbox, self.probe_outbox = self.probe_outbox, None
        elif isinstance(event, UpgradeFailed):
            if self.probe_outbox is not None:
                self.probe_outbox.close()
            self.probe_outbox = None
        elif isinstance(event, CloseTransport):
            self.finish()

    def finish(self) -> None:
        """The session is over: release every waiter, close the WebSockets, stop the timer."""
        if self.finished.is_set():
            return
        self.finished.set()
        while self.polls:
            self.polls.popleft().answer(_CLOSE_BODY)
        for outbox in (self.ws_outbox, self.probe_outbox):
            if outbox is not None:
                outbox.close()
        if self._timer_scope is not None:
            self._timer_scope.cancel()
        self.on_finish(self)

    def poll_body(self, waiter: PollWaiter) -> tuple[str, list[HandlerCall]]:
        """The answered GET's body, with the packets queued since it was answered, and
        the handler calls to run (when the CLOSE packet went with them)."""
        if waiter.packets is None:
            assert waiter.body is not None
            return waiter.body, _NO_CALLS
        extra, events = self.core.poll_more(waiter.packets, anyio.current_time())
        calls = self.apply(events)[0] if events else _NO_CALLS
        return encode_payload(waiter.packets + extra), calls

    def park(self) -> PollWaiter:
        waiter = PollWaiter()
        self.polls.append(waiter)
        return waiter

    def _reschedule(self) -> None:
        """Wake the timer earlier if a deadline moved in (later ones wait for its wake-up)."""
        scope = self._timer_scope
        if scope is not None:
            deadline = self.core.next_deadline()
            if deadline is not None and deadline < self._timer_at:
                self._timer_at = scope.deadline = deadline

    async def run_timer(self, run_calls: Callable[[Conn, list[HandlerCall]], Any]) -> None:
        """The heartbeat: call ``tick`` at each deadline until the session finishes."""
        core = self.core
        while not self.finished.is_set() and core.state is not SessionState.CLOSED:
            deadline = core.next_deadline()
            now = anyio.current_time()
            if deadline is None or deadline > now:
                self._timer_at = math.inf if deadline is None else deadline
                with anyio.CancelScope(deadline=self._timer_at) as scope:
                    self._timer_scope = scope
                    await anyio.sleep_forever()
                self._timer_scope = None
                continue  # look again: the deadline may have moved later
            calls, _ = self.apply(core.tick(now))
            if calls:
                await run_calls(self, calls)
        self.finish()
