"""State and seams shared by the reading and writing halves of a server connection.

:class:`ConnectionCore` owns the h11 connection, the :class:`Transport` and
the per-request state, and holds the seams: h11's errors become ours in
:meth:`~ConnectionCore._next_event` (remote) and
:meth:`~ConnectionCore._send_events` (local); every write goes through
``_send_events``; refusals (error responses followed by a close) are sent by
:meth:`~ConnectionCore._send_refusal`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio
import h11
from anyio.abc import ByteStream

from .._tasks import clock
from ..errors import ConcurrencyError, LocalProtocolError, RemoteProtocolError
from ._plain import PlainRequest
from ._request import HeaderInput, HTTPLimits, Request, error_response, reason_phrase
from ._transport import Transport

__all__ = ["DEFAULT_LIMITS", "ConnectionCore", "IdleWatch"]

DEFAULT_LIMITS = HTTPLimits()
_LOGGER = logging.getLogger("anywire.http")

NextEvent = h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]


class Exclusive:
    """Marks an operation that one task at a time may run."""

    def __init__(self, what: str) -> None:
        self._what = what
        self.busy = False

    def __enter__(self) -> None:
        if self.busy:
            raise ConcurrencyError(f"another task is already {self._what} this connection")
        self.busy = True

    def __exit__(self, *exc_info: object) -> None:
        self.busy = False


class IdleWatch:
    """Ends the idle waits of many connections from one task: cheaper than a timer each.

    A connection inside ``idle_timeouts(watch)`` that waits for the first byte of a
    request enters itself and its deadline in :attr:`waiting` and leaves when the
    bytes come: two dictionary operations per request, where moving a cancel scope's
    deadline there and back (a timer made and cancelled) cost 5-6% of the Engine.IO
    server's CPU per polling message. :meth:`run` (in the server's task group) looks
    at the waiting connections every ``tick`` seconds and cancels the idle block of
    each whose deadline has passed, so such a timeout ends at most ``tick`` late.
    """

    def __init__(self, tick: float) -> None:
        if tick <= 0:
            raise ValueError("tick must be positive")
        self.tick = tick
        self.waiting: dict[ConnectionCore, float] = {}

    @classmethod
    def for_limits(cls, limits: HTTPLimits) -> IdleWatch | None:
        """A watch whose tick is a tenth of the shortest idle timeout (at most 1 s);
        None when ``limits`` sets none."""
        timeouts = [t for t in (limits.keep_alive_timeout, limits.header_timeout) if t]
        if not timeouts:
            return None
        return cls(min(1.0, max(0.005, min(timeouts) / 10)))

    async def run(self) -> None:
        """Check the waiting connections every ``tick`` seconds, until cancelled."""
        now = clock()
        while True:
            await anyio.sleep(self.tick)
            moment = now()
            expired = [core for core, deadline in self.waiting.items() if deadline <= moment]
            for core in expired:
                del self.waiting[core]
                core._idle_expired()


@contextmanager
def h11_misuse() -> Iterator[None]:
    """Report h11's complaints about the events we build as our LocalProtocolError."""
    try:
        yield
    except h11.LocalProtocolError as exc:
        raise LocalProtocolError(str(exc)) from exc


class ConnectionCore:
    """The shared state of :class:`~anywire._http.ServerConnection` (see there)."""

    def __init__(
        self,
        stream: ByteStream,
        *,
        limits: HTTPLimits = DEFAULT_LIMITS,
        logger: logging.Logger | None = None,
    ) -> None:
        self._limits = limits
        self._log = logger or _LOGGER
        self._h11 = self._new_h11()
        self._io = Transport(
            stream,
            receive_bytes=limits.receive_bytes,
            linger=limits.close_linger,
        )
        self._reading = Exclusive("reading from")
        self._writing = Exclusive("writing to")
        self._request: Request | None = None
        self._requests = 0
        self._body_received = 0
        self._body_allowed = True
        self._switched = False
        self._first_deadline: float | None = None
        #: From a response written past h11 (``_answered_without_h11``) to the next cycle.
        self._answered = False
        self._idle_scope: anyio.CancelScope | None = None  # see idle_timeouts()
        self._idle_watch: IdleWatch | None = None  # see idle_timeouts()
        self._end_pending = False  # see _their_state
        self._clock: Callable[[], float] | None = None  # see _deadline_after
        # Plain requests (see _plain.py) are parsed and answered without h11. Between
        # requests, and while such a request is served, received bytes wait in _buffer
        # and h11 is fresh (both sides IDLE, nothing received): _h11_active is False.
        self._h11_active = False
        self._buffer = bytearray()
        #: The bytes (head and body) of the plain request being served; h11 has not seen them.
        self._plain: bytes | None = None
        #: Its body, until receive_body() hands it out.
        self._plain_body: bytes | None = None
        self._plain_body_max = min(
            limits.max_drain_size,
            limits.max_drain_size if limits.max_body_size is None else limits.max_body_size,
        )

    def __repr__(self) -> str:
        state = "switched" if self._switched else "closed" if self._io.closed else "open"
        return (
            f"<{type(self).__name__} {state} our={self._h11.our_state!r} "
            f"their={self._h11.their_state!r} requests={self._requests}>"
        )

    @property
    def limits(self) -> HTTPLimits:
        """The bounds this connection enforces."""
        return self._limits

    @property
    def stream(self) -> ByteStream:
        """The underlying stream (the caller's after :meth:`switch_protocols`)."""
        return self._io.stream

    @property
    def request(self) -> Request | None:
        """The request being served, if any."""
        return self._request

    @property
    def closed(self) -> bool:
        """Whether the stream is closed."""
        return self._io.closed

    @property
    def switched(self) -> bool:
        """Whether :meth:`switch_protocols` handed the stream over to the caller."""
        return self._switched

    @property
    def body_complete(self) -> bool:
        """Whether the request body was received whole (``receive_body`` would return ``b""``).

        True as soon as the last byte of a ``Content-Length`` body is returned,
        so a reader can tell the last chunk without another call; for a chunked
        body, once its terminating chunk was read. Also True between requests.
        """
        if self._plain is not None:
            return self._plain_body is None
        return self._their_state is not h11.SEND_BODY

    @property
    def _their_state(self) -> object:
        """h11's state of the client (read it here, not on ``self._h11``).

        The end of a request known to have no body is handed to h11 when
        first needed: a kept-alive response written without h11 never needs
        it (``_end_pending`` stands for it there). A plain request still
        unanswered is handed to h11 first (``_catch_up``).
        """
        self._catch_up()
        if self._end_pending:
            self._end_pending = False
            self._next_event()  # the EndOfMessage of the empty body: the request is complete
        return self._h11.their_state

    @property
    def client_disconnected(self) -> bool:
        """Whether the client ended its side (EOF, even a half-close) or reset the connection."""
        return self._io.peer_gone

    @contextmanager
    def idle_timeouts(self, watch: IdleWatch | None = None) -> Iterator[None]:
        """Run the request loop in this block to make waiting for a request cheaper.

        Optional. Inside the block, waiting for the first byte of a request
        moves the deadline of one cancel scope (this block's) instead of
        entering a cancel scope per read; with a ``watch`` (one for many
        connections, see :class:`IdleWatch`) it only tells the watch. When that
        wait times out (the keep-alive timeout, or the header timeout of a
        fresh connection), the rest of the block is cancelled instead of
        :meth:`next_request` returning ``None``, and the caller closes the
        connection after it. Reads past the first byte of a head keep their
        own deadlines (408).
        """
        with anyio.CancelScope() as scope:
            self._idle_scope = scope
            self._idle_watch = watch
            try:
                yield
            finally:
                self._idle_scope = None
                self._idle_watch = None
                if watch is not None:
                    watch.waiting.pop(self, None)

    def _idle_expired(self) -> None:
        """The :class:`IdleWatch` found this connection's idle wait past its deadline."""
        if self._idle_scope is not None:
            self._idle_scope.cancel()

    def _deadline_after(self, seconds: float | None) -> float:
        """The clock value ``seconds`` from now (infinity for None)."""
        if seconds is None:
            return math.inf
        if self._clock is None:
            self._clock = clock()  # the running loop's, cheaper than anyio.current_time()
        return self._clock() + seconds

    def _check_request(self) -> None:
        if self._switched:
            raise LocalProtocolError("the connection switched protocols")
        if self._request is None:
            raise LocalProtocolError("no request: call next_request() first")

    def _new_h11(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._limits.max_header_bytes)

    def _answered_without_h11(self) -> None:
        """A kept-alive response to a complete request went out past h11.

        Until the next cycle, ``_answered`` stands for h11's DONE. If h11 had
        parsed the request, it starts afresh (``_leave_h11``).
        """
        if self._h11_active:
            self._leave_h11()
        self._answered = True

    def _leave_h11(self) -> None:
        """Between requests: a fresh h11 (both sides IDLE), received bytes to ``_buffer``."""
        data = self._h11.trailing_data[0]
        self._h11 = self._new_h11()
        self._h11_active = False
        self._end_pending = False
        self._buffer += data

    def _feed(self, data: bytes) -> None:
        """Pass received bytes on: to h11 if it is in charge, else to ``_buffer``.

        ``b""`` (end of input) is recorded by the transport (``peer_gone``).
        """
        if self._h11_active:
            self._h11.receive_data(data)
        elif data:
            self._buffer += data

    def _to_h11(self) -> None:
        """Let h11 parse what is buffered (a head that is not plain, or the end of input)."""
        if self._h11_active:
            return
        self._h11_active = True
        if self._buffer:
            self._h11.receive_data(bytes(self._buffer))
            self._buffer.clear()
        if self._io.peer_gone:
            self._h11.receive_data(b"")

    def _start_plain(self, plain: PlainRequest) -> Request:
        """Serve the plain request at the start of ``_buffer`` (h11 stays fresh)."""
        raw = bytes(self._buffer[: plain.end])
        del self._buffer[: plain.end]
        self._plain = raw
        self._plain_body = raw[plain.head_end :] or None
        return plain.request

    def _catch_up(self) -> None:
        """Hand an unanswered plain request to h11, for what only h11 does.

        h11 gets the same bytes, so it parses the same request (tests prove
        it); the body is taken from it as far as the application has read it.
        """
        raw = self._plain
        if raw is None or self._answered:
            return
        self._plain = None
        body_read = self._plain_body is None
        self._plain_body = None
        self._to_h11_with(raw)
        event = self._next_event()
        assert isinstance(event, h11.Request)
        if self._request is not None and self._request.content_length == 0:
            self._end_pending = True
        elif body_read:
            while not isinstance(self._next_event(), h11.EndOfMessage):
                pass

    def _to_h11_with(self, raw: bytes) -> None:
        self._h11.receive_data(raw)
        self._to_h11()

    def _forget_plain(self) -> None:
        """A new cycle: the answered plain request is done (an unread body is dropped)."""
        self._plain = None
        self._plain_body = None

    def _next_event(self) -> NextEvent:
        """h11's next event; its RemoteProtocolError becomes ours (the one seam for it)."""
        try:
            return self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            raise RemoteProtocolError(str(exc), hint=exc.error_status_hint) from exc

    async def _send_events(self, *events: h11.Event) -> None:
        """Turn events into bytes and write them in one go (the one write path)."""
        self._io.check_open()
        try:
            data = b"".join(self._h11.send(event) or b"" for event in events)
        except h11.LocalProtocolError as exc:
            await self._io.abort()
            raise LocalProtocolError(f"h11 refused the response: {exc}") from exc
        await self._io.send(data)

    async def _refuse(self, status: int, message: str) -> None:
        """Send an error response from a reading path (unless a response is under way)."""
        if self._writing.busy:
            await self._io.abort()
            return
        with self._writing:
            await self._send_refusal(status, message, (), linger=True)

    async def _send_refusal(
        self, status: int, message: str, headers: HeaderInput, *, linger: bool
    ) -> None:
        self._log.debug("refusing request with %d: %s", status, message)
        if self._io.closed:
            return
        self._catch_up()
        if self._answered or self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            await self._io.abort()  # a response has started: cutting it is all we can do
            return
        fields, body = error_response(status, message, headers)
        with h11_misuse():
            head = h11.Response(status_code=status, headers=fields, reason=reason_phrase(status))
        try:
            await self._send_events(head, h11.Data(data=body), h11.EndOfMessage())
        except anyio.BrokenResourceError:
            return  # the client is gone: nobody to tell
        await self._close(linger=linger)

    async def _close(self, *, linger: bool) -> None:
        if linger:
            await self._io.close_gracefully()
        else:
            await self._io.aclose()
