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
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import h11
from anyio.abc import ByteStream

from ..errors import ConcurrencyError, LocalProtocolError, RemoteProtocolError
from ._request import HeaderInput, HTTPLimits, Request, error_response, reason_phrase
from ._transport import Transport

__all__ = ["DEFAULT_LIMITS", "ConnectionCore"]

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


@contextmanager
def h11_misuse() -> Iterator[None]:
    """Report h11's complaints about the events we build as our LocalProtocolError."""
    try:
        yield
    except h11.LocalProtocolError as exc:
        raise LocalProtocolError(str(exc)) from exc


def deadline_after(seconds: float | None) -> float:
    """The clock value ``seconds`` from now (infinity for None)."""
    return math.inf if seconds is None else anyio.current_time() + seconds


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
        self._end_pending = False  # see _their_state

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
        return self._their_state is not h11.SEND_BODY

    @property
    def _their_state(self) -> object:
        """h11's state of the client (read it here, not on ``self._h11``).

        The end of a request known to have no body is handed to h11 when
        first needed: a kept-alive response written without h11 never needs
        it (``_end_pending`` stands for it there).
        """
        if self._end_pending:
            self._end_pending = False
            self._next_event()  # the EndOfMessage of the empty body: the request is complete
        return self._h11.their_state

    @property
    def client_disconnected(self) -> bool:
        """Whether the client ended its side (EOF, even a half-close) or reset the connection."""
        return self._io.peer_gone

    @contextmanager
    def idle_timeouts(self) -> Iterator[None]:
        """Run the request loop in this block to make waiting for a request cheaper.

        Optional. Inside the block, waiting for the first byte of a request
        moves the deadline of one cancel scope (this block's) instead of
        entering a cancel scope per read. When that wait times out (the
        keep-alive timeout, or the header timeout of a fresh connection), the
        rest of the block is cancelled instead of :meth:`next_request`
        returning ``None``, and the caller closes the connection after it.
        Reads past the first byte of a head keep their own deadlines (408).
        """
        with anyio.CancelScope() as scope:
            self._idle_scope = scope
            try:
                yield
            finally:
                self._idle_scope = None

    def _check_request(self) -> None:
        if self._switched:
            raise LocalProtocolError("the connection switched protocols")
        if self._request is None:
            raise LocalProtocolError("no request: call next_request() first")

    def _new_h11(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._limits.max_header_bytes)

    def _answered_without_h11(self) -> None:
        """A kept-alive response to a complete request went out past h11: start it afresh.

        A fresh h11 connection is in the state ``start_next_cycle`` would
        leave (both sides IDLE); the bytes received past the request carry
        over. Until the next cycle, ``_answered`` stands for h11's DONE.
        """
        data, closed = self._h11.trailing_data
        self._h11 = self._new_h11()
        self._end_pending = False
        if data:
            self._h11.receive_data(data)
        if closed:
            self._h11.receive_data(b"")
        self._answered = True

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
