"""One Engine.IO client session on the network: polling over httpx, our WebSocket client.

A :class:`Link` moves bytes and time for one :class:`ClientSession` (the
sans-I/O core, which holds every protocol rule): :meth:`Link.open` runs the
handshake; :meth:`Link.run` runs the session's tasks (reader, writer,
heartbeat, upgrade probe) in a task group of its own until the session ends;
:meth:`Link.send` hands a message to the core; :meth:`Link.aclose` ends the
session: queued messages, then the CLOSE packet, then the transport.

One writer at a time: the core hands out a :class:`SendPackets` only when the
writer is idle, so at most one batch is pending and the core's bounded queue is
the only buffer. The writer tells the core it is idle only once there is
something to hand out (see :meth:`Link._writer_idle`): messages sent while it
was busy, or in the same turn of the caller, then go out as one batch (one POST)
instead of the first alone and the rest after it. Background tasks never raise:
a failure becomes the core's :class:`Closed` event, whose ``error`` is the cause.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import anyio
import httpx

from anywire._tasks import clock
from anywire.engineio._client_http import LinkSettings, open_websocket, poll_timeout, request
from anywire.engineio._errors import InvalidResponse, ServerUnreachable, SessionClosed
from anywire.engineio._packets import Handshake, Transport, encode_frame
from anywire.engineio._session import (
    ClientSession,
    Closed,
    CloseTransport,
    Event,
    MessageReceived,
    Opened,
    SendPackets,
    SendProbe,
    SessionState,
    UpgradeDone,
    UpgradeFailed,
)
from anywire.errors import ConnectionClosed
from anywire.websocket import WebSocket

__all__ = ["Link", "LinkSettings"]

_POLLING, _WEBSOCKET = Transport.POLLING, Transport.WEBSOCKET
_DONE_STATES: Final = frozenset({SessionState.CLOSING, SessionState.CLOSED})


class Link:
    """One Engine.IO session of a client; see the module docstring.

    ``deliver(data)`` receives each message, in order; it may block (the
    reader then stops reading: backpressure).
    """

    def __init__(
        self,
        settings: LinkSettings,
        http: httpx.AsyncClient,
        deliver: Callable[[str | bytes], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self._http = http
        self._deliver = deliver
        self._log = settings.logger
        self._now: Callable[[], float] = clock()
        self.session = ClientSession(
            settings.transports[0],
            now=self._now(),
            json=settings.json,
            max_queue=settings.max_queue,
            max_queue_bytes=settings.max_queue_bytes,
            close_timeout=settings.request_timeout,
        )
        self.handshake: Handshake | None = None
        self.closed: Closed | None = None
        self.closed_event = anyio.Event()
        self.reported = False  # the client fired `disconnect` for this session
        self._early: list[str | bytes] = []  # messages that came with the handshake
        self._pending: SendPackets | None = None
        self._busy = False  # the core handed out a batch and has not heard writer_idle() since
        self._finishing = False  # CloseTransport seen: write what is pending, then stop
        self._running = False
        self._done = anyio.Event()
        self._ws: WebSocket | None = None
        self._probe: WebSocket | None = None
        self._writer_wake = anyio.Event()
        self._poll_wake = anyio.Event()
        self._timer_wake = anyio.Event()
        self._drained = anyio.Event()

    def __repr__(self) -> str:
        return f"<Link sid={self.sid!r} {self.session!r}>"

    @property
    def sid(self) -> str | None:
        return self.session.sid

    @property
    def transport(self) -> Transport:
        return self.session.transport

    @property
    def is_closed(self) -> bool:
        return self.closed is not None or self.session.state in _DONE_STATES

    # -- opening ------------------------------------------------------------------

    async def open(self) -> Handshake:
        """Run the handshake on the first transport; raise a :class:`ClientConnectionError`."""
        try:
            with anyio.fail_after(self.settings.request_timeout):
                if self.session.transport is _POLLING:
                    await self._open_polling()
                else:
                    await self._open_websocket_only()
        except TimeoutError as exc:
            await self._abandon()
            raise ServerUnreachable(f"no handshake from {self.settings.url} in time") from exc
        except BaseException:
            await self._abandon()
            raise
        assert self.handshake is not None
        return self.handshake

    async def _open_polling(self) -> None:
        url = self.settings.endpoint(_POLLING)
        self._log.info("connecting to %s", url)
        body = await self._request("GET", url, handshake=True)
        self._opened(await self._process(self.session.receive_payload(body, self._now())))

    async def _open_websocket_only(self) -> None:
        url = self.settings.endpoint(_WEBSOCKET)
        self._log.info("connecting to %s", url)
        self._ws = await self._open_websocket(url, handshake=True)
        try:
            frame = await self._ws.receive()
        except ConnectionClosed as exc:
            raise ServerUnreachable("the WebSocket closed before the handshake") from exc
        assert frame is not None
        self._opened(await self._process(self.session.receive_frame(frame, self._now())))

    def _opened(self, events: list[Event]) -> None:
        if self.closed is not None and self.handshake is None:
            error = self.closed.error
            raise InvalidResponse(f"not an Engine.IO handshake: {error}") from error
        if self.handshake is None:
            raise InvalidResponse("the server sent no OPEN packet")
        self._log.info("connected: sid=%s on %s", self.sid, self.transport.value)

    async def _abandon(self) -> None:
        self._process_now(self.session.close(self._now(), abort=True))
        with anyio.CancelScope(shield=True):
            await self._close_websockets()
        self._done.set()

    # -- running --------------------------------------------------------------------

    async def run(self) -> None:
        """Run the session's tasks until it ends; on cancellation, close it cleanly first."""
        self._running = True
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeat)
                if self.transport is _POLLING:
                    tg.start_soon(self._poll_loop)
                    if self.session.can_upgrade and _WEBSOCKET in self.settings.transports:
                        tg.start_soon(self._upgrade)
                else:
                    assert self._ws is not None
                    tg.start_soon(self._websocket_loop, self._ws)
                await self._writer()
                tg.cancel_scope.cancel()
        finally:
            self._running = False
            with anyio.CancelScope(shield=True):
                await self._farewell(abort=False)

    async def send(self, data: str | bytes) -> None:
        """Queue a message; waits while the core's queue is over half its bounds.

        Raises :class:`SessionClosed` (from the loss's cause) once the session ended.
        """
        while not self.is_closed and self._congested():
            self._drained = anyio.Event()
            await self._drained.wait()
        self.send_nowait(data)

    def send_nowait(self, data: str | bytes) -> None:
        """Queue a message without waiting (the caller checked the bounds)."""
        if self.is_closed:
            reason = self.closed.reason if self.closed else "closed"
            raise SessionClosed(reason) from (self.closed.error if self.closed else None)
        self._process_now(self.session.send_message(data, self._now()))

    def _congested(self) -> bool:
        packets, nbytes = self.session.queued
        s = self.settings
        return packets >= s.max_queue // 2 or nbytes >= s.max_queue_bytes // 2

    async def aclose(self, *, wait: bool = True) -> None:
        """End the session: what is queued, the CLOSE packet, then the transport.

        While :meth:`run` runs, its writer does it (``wait=False``: do not wait
        for the end); otherwise it is done here, within ``request_timeout``.
        """
        self._process_now(self.session.close(self._now()))
        self._timer_wake.set()
        if self._running:
            if wait:
                await self._done.wait()
        else:
            await self._farewell(abort=False)

    async def wait_closed(self) -> None:
        """Wait until the session and its transports are closed."""
        await self._done.wait()

    # -- events ---------------------------------------------------------------------

    async def _process(self, events: list[Event]) -> list[Event]:
        """Handle ``events`` in order; messages go to ``deliver`` (held until run())."""
        for event in events:
            if isinstance(event, MessageReceived):
                if self._running:
                    await self._deliver(event.data)
                else:
                    self._early.append(event.data)
            else:
                self._apply(event)
        if self._owes_idle():
            self._writer_wake.set()  # for _writer_idle()
        return events

    def _process_now(self, events: list[Event]) -> None:
        for event in events:
            assert not isinstance(event, MessageReceived)
            self._apply(event)
        if self._owes_idle():
            self._writer_wake.set()  # for _writer_idle()

    def _apply(self, event: Event) -> None:
        if isinstance(event, SendPackets):
            self._pending, self._busy = event, True
            self._writer_wake.set()
        elif isinstance(event, Opened):
            self.handshake = event.handshake
        elif isinstance(event, UpgradeDone):
            self._ws, self._probe = self._probe, None
            self._log.info("upgraded to websocket: sid=%s", self.sid)
            self._poll_wake.set()
        elif isinstance(event, UpgradeFailed):
            self._log.info("websocket upgrade failed (%s): staying on polling", event.reason)
            self._poll_wake.set()
        elif isinstance(event, Closed):
            self._on_closed(event)
        elif isinstance(event, CloseTransport):
            self._finishing = True
            self._writer_wake.set()
            self._poll_wake.set()

    def _on_closed(self, event: Closed) -> None:
        if self.closed is None:
            self.closed = event
            self._log.info("session %s closed: %s %r", self.sid, event.reason.value, event.error)
        self.closed_event.set()
        self._drained.set()
        self._timer_wake.set()

    # -- writing --------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            self._writer_idle()
            if self._pending is not None:
                await self._write_pending()
            elif self._finishing:
                return
            else:
                self._writer_wake = anyio.Event()
                await self._writer_wake.wait()

    async def _write_pending(self) -> None:
        batch, self._pending = self._pending, None
        assert batch is not None
        try:
            await self._write(batch)
        except Exception as exc:
            self._busy = False
            self._log.info("writing on %s failed: %r", batch.transport.value, exc)
            self._process_now(self.session.transport_lost(batch.transport, self._now(), exc))
            return
        self._drained.set()
        self._writer_idle()

    def _writer_idle(self) -> None:
        """Tell the core the writer is free, once it has something to hand out.

        On polling, while the session is OPEN with nothing queued, the writer
        stays busy for the core: a message sent now is queued (and wakes the
        writer, see :meth:`_process_now`) instead of leaving alone at once in
        a POST of its own, so the messages sent in the same turn share a POST.
        Upgrading and closing need the idle writer at once (the switch, the
        CLOSE packet); a WebSocket writes a frame per message anyway.
        """
        if self._owes_idle():
            self._busy = False
            self._process_now(self.session.writer_idle(self._now()))

    def _owes_idle(self) -> bool:
        if not self._busy or self._pending is not None:
            return False
        session = self.session
        if session.transport is _WEBSOCKET or session.state is not SessionState.OPEN:
            return True
        return session.queued[0] > 0

    async def _write(self, batch: SendPackets) -> None:
        if batch.transport is _POLLING:
            url = self.settings.endpoint(_POLLING, self.sid)
            await self._request("POST", url, body=batch.payload().encode("utf-8", "surrogatepass"))
            return
        ws = self._ws
        if ws is None:
            raise anyio.ClosedResourceError
        for frame in batch.frames():
            await ws.send(frame)

    async def _farewell(self, *, abort: bool) -> None:
        """No task runs: write what the core still hands out (CLOSE last), close transports."""
        with anyio.move_on_after(self.settings.request_timeout, shield=True):
            self._process_now(self.session.close(self._now(), abort=abort))
            # After an interrupted write (its batch may or may not have arrived), too:
            self._writer_idle()
            while self._pending is not None and self.transport_usable():
                await self._write_pending()
        if self.session.state is not SessionState.CLOSED:
            self._process_now(self.session.transport_lost(self.transport, self._now()))
        with anyio.CancelScope(shield=True):
            await self._close_websockets()
        self._done.set()

    def transport_usable(self) -> bool:
        assert self._pending is not None
        return self._pending.transport is _POLLING or self._ws is not None

    # -- reading --------------------------------------------------------------------

    async def _flush_early(self) -> None:
        early, self._early = self._early, []
        for data in early:
            await self._deliver(data)

    async def _poll_loop(self) -> None:
        await self._flush_early()
        while not self.is_closed and self.transport is _POLLING:
            if not self.session.begin_poll(self._now()):
                self._poll_wake = anyio.Event()
                await self._poll_wake.wait()
                continue
            try:
                body = await self._request("GET", self.settings.endpoint(_POLLING, self.sid))
            except Exception as exc:
                self._log.info("polling GET failed: %r", exc)
                await self._process(self.session.transport_lost(_POLLING, self._now(), exc))
                return
            await self._process(self.session.receive_payload(body, self._now()))

    async def _websocket_loop(self, ws: WebSocket) -> None:
        await self._flush_early()
        await self._read_frames(ws)

    async def _read_frames(self, ws: WebSocket) -> None:
        while True:
            try:
                frame = await ws.receive()
            except (ConnectionClosed, anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
                error = None if isinstance(exc, ConnectionClosed) and exc.code == 1000 else exc
                await self._process(self.session.transport_lost(_WEBSOCKET, self._now(), error))
                return
            assert frame is not None
            await self._process(self.session.receive_frame(frame, self._now()))
            if not self._carries(ws):
                return  # the probe failed

    async def _heartbeat(self) -> None:
        while (deadline := self.session.next_deadline()) is not None:
            self._timer_wake = anyio.Event()
            with anyio.move_on_after(deadline - self._now()):
                await self._timer_wake.wait()
            await self._process(self.session.tick(self._now()))

    # -- upgrade --------------------------------------------------------------------

    async def _upgrade(self) -> None:
        url = self.settings.endpoint(_WEBSOCKET, self.sid)
        try:
            with anyio.fail_after(self.settings.request_timeout):
                probe = await self._open_websocket(url, handshake=False)
        except Exception as exc:
            self._log.info("websocket upgrade failed: %r", exc)
            return
        self._probe = probe
        if not self.session.can_upgrade:
            return  # closed meanwhile: run() closes the probe
        for event in self.session.start_upgrade(self._now()):
            assert isinstance(event, SendProbe)
            await self._send_probe(probe, event)
        frame = await self._probe_answer(probe)
        if frame is None:
            await self._process(self.session.transport_lost(_WEBSOCKET, self._now()))
        else:
            await self._process(self.session.receive_frame(frame, self._now()))
        if not self._carries(probe):  # the probe failed
            self._probe = None
            with anyio.CancelScope(shield=True):
                await probe.close()
            return
        await self._read_frames(probe)

    async def _probe_answer(self, probe: WebSocket) -> str | bytes | None:
        """The first frame on ``probe``; None if it closed or stayed silent too long.

        A server that ends the session during the upgrade closes the probe before
        "3probe": a failed probe, the session goes on (and ends) on polling.
        """
        try:
            return await probe.receive(timeout=self.settings.request_timeout)
        except (ConnectionClosed, anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            self._log.info("websocket probe failed: %r", exc)
            return None

    def _carries(self, ws: WebSocket) -> bool:
        """Whether ``ws`` is the session's WebSocket or a probe still in progress."""
        upgrading = self.session.state is SessionState.UPGRADING
        return ws is self._ws or (ws is self._probe and upgrading)

    async def _send_probe(self, probe: WebSocket, event: SendProbe) -> None:
        frame = encode_frame(event.packet)
        try:
            await probe.send(frame)
        except ConnectionClosed as exc:
            self._log.info("websocket probe failed: %r", exc)

    # -- I/O helpers ----------------------------------------------------------------

    async def _request(
        self, method: str, url: str, *, body: bytes | None = None, handshake: bool = False
    ) -> bytes:
        timeout = poll_timeout(self.settings, method, self.handshake)
        return await request(self._http, self.settings, method, url, body, handshake, timeout)

    async def _open_websocket(self, url: str, *, handshake: bool) -> WebSocket:
        return await open_websocket(self._http, self.settings, url)

    async def _close_websockets(self) -> None:
        for ws in (self._probe, self._ws):
            if ws is not None:
                await ws.close()
        self._probe = self._ws = None
