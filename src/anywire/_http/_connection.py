"""The server side of one HTTP/1.1 connection, on h11 and an anyio byte stream.

One :class:`ServerConnection` serves the requests of one connection in turn::

    async with ServerConnection(stream) as conn:
        while (request := await conn.next_request()) is not None:
            body = await conn.read_body()
            await conn.send_response(200, [(b"content-type", b"text/plain")], b"hi")

Bad input is answered here (400, 408, 413, 431, 501, 505, with a small
plain-text body and ``Connection: close``), then the connection is closed and
the method raises :class:`~anywire.errors.RemoteProtocolError` (``hint`` is the
status sent) or :class:`~anywire.errors.LimitExceeded` (413). Misuse of the API
raises :class:`~anywire.errors.LocalProtocolError`; when h11 refused something
after part of a response was written, the connection is closed too.

Reading (``next_request``, ``receive_body``, ``read_body``,
``wait_disconnected``) and writing (``start_response``, ``send_body``,
``end_response``, ``send_response``, ``send_error``) may run in two tasks at
once, one of each: a second concurrent reader or writer gets
:class:`~anywire.errors.ConcurrencyError`.
"""

from __future__ import annotations

from types import TracebackType

import h11

from ..errors import LocalProtocolError
from ._core import h11_misuse
from ._reading import RequestReader
from ._request import HeaderInput, encode_headers, has_header, reason_phrase, response_head

__all__ = ["ServerConnection"]

_NO_BODY_STATUSES = frozenset({204, 304})


class ServerConnection(RequestReader):
    """One server-side HTTP/1.1 connection over ``stream``.

    ``ServerConnection(stream, *, limits=HTTPLimits(), logger=None)``:
    ``limits`` bounds sizes and times (see :class:`HTTPLimits`); refusals are
    logged at debug level on ``logger`` (default ``anywire.http``).

    Keep-alive: after a complete response, :meth:`next_request` starts the
    next cycle. Request body bytes the application left unread are read and
    discarded, up to ``limits.max_drain_size`` and within
    ``limits.header_timeout``; past either the connection is closed instead.
    When the remainder is known to be too big (or the client still waits for
    ``100 Continue``), the response carries ``Connection: close``. A server
    runs its request loop inside :meth:`idle_timeouts` to wait for requests
    more cheaply; a plain kept-alive :meth:`send_response` writes its head
    without h11 (the same bytes, see ``response_head``).

    Closing: the connection closes itself after a response that ends it
    (HTTP/1.0, ``Connection: close``, an error response), sending end-of-stream
    first and lingering up to ``limits.close_linger`` seconds; :meth:`aclose`
    closes at once. Once closed, :meth:`next_request` returns ``None`` and
    writes raise ``anyio.ClosedResourceError`` (we closed it) or
    ``anyio.BrokenResourceError`` (the client went away, or a write was
    interrupted).
    """

    async def __aenter__(self) -> ServerConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the stream at once (a response in progress is cut); idempotent.

        After :meth:`switch_protocols` the stream belongs to the caller and
        this does nothing.
        """
        if not self._switched:
            await self._io.aclose()

    async def start_response(self, status: int, headers: HeaderInput = ()) -> None:
        """Send the response head; the body follows with :meth:`send_body`.

        Without ``content-length`` the body is chunked for an HTTP/1.1
        client and delimited by closing the connection for HTTP/1.0. The
        reason phrase is the standard one for ``status``. Status 1xx is not
        accepted: ``100 Continue`` is automatic, 101 is :meth:`switch_protocols`.
        """
        with self._writing:
            await self._send_events(self._response_head(status, headers))

    async def send_body(self, data: bytes) -> None:
        """Send part of the response body (dropped for HEAD requests and 204/304)."""
        with self._writing:
            self._check_sending()
            if data and self._body_allowed:
                await self._send_events(h11.Data(data=data))

    async def end_response(self) -> None:
        """Finish the response; closes the connection if the response ends it."""
        with self._writing:
            self._check_sending()
            await self._send_events(h11.EndOfMessage())
            await self._after_response()

    async def send_response(
        self, status: int, headers: HeaderInput = (), body: bytes = b""
    ) -> None:
        """Send a whole response in one write, adding ``content-length`` if missing."""
        with self._writing:
            head = self._plain_head(status, headers, len(body))
            if head is not None:
                self._answered_without_h11()
                await self._io.send(head + body)
                return
        fields = encode_headers(headers)
        if not (
            status in _NO_BODY_STATUSES
            or has_header(fields, b"content-length")
            or has_header(fields, b"transfer-encoding")
        ):
            fields.append((b"content-length", str(len(body)).encode()))
        with self._writing:
            events: list[h11.Event] = [self._response_head(status, fields)]
            if body and self._body_allowed:
                events.append(h11.Data(data=body))
            events.append(h11.EndOfMessage())
            await self._send_events(*events)
            await self._after_response()

    async def send_error(self, status: int, message: str = "", headers: HeaderInput = ()) -> None:
        """Refuse the request: ``status`` with ``message`` as plain text, then close.

        ``headers`` are added (``Sec-WebSocket-Version`` for a 426, ...). Also
        usable before any request. If a response has already started, the
        connection is just closed.
        """
        with self._writing:
            if self._switched:
                raise LocalProtocolError("the connection switched protocols")
            text = message or reason_phrase(status).decode()
            await self._send_refusal(status, text, headers, linger=not self._reading.busy)

    async def switch_protocols(self, headers: HeaderInput = ()) -> bytes:
        """Send ``101 Switching Protocols``; return the bytes received past the request.

        The request must carry an ``Upgrade`` header and its body must be
        complete. Afterwards this object is done: the caller owns
        :attr:`stream` and feeds the returned bytes to the next protocol first.
        """
        with self._reading, self._writing:
            self._check_can_respond()
            self._finish_upgrade_request()
            with h11_misuse():
                event = h11.InformationalResponse(
                    status_code=101, headers=encode_headers(headers), reason=reason_phrase(101)
                )
            await self._send_events(event)
            self._switched = True
            return self._h11.trailing_data[0]

    def _finish_upgrade_request(self) -> None:
        assert self._request is not None
        if self._request.header("upgrade") is None:
            raise LocalProtocolError("the request did not ask to upgrade")
        while self._their_state is h11.SEND_BODY:
            event = self._next_event()
            if event is h11.NEED_DATA or (isinstance(event, h11.Data) and event.data):
                raise LocalProtocolError("read the request body before switching protocols")

    def _check_can_respond(self) -> None:
        self._check_request()
        self._io.check_open()
        self._catch_up()
        if self._h11.our_state is not h11.SEND_RESPONSE:
            raise LocalProtocolError("a response to this request has already started")

    def _check_sending(self) -> None:
        if self._switched:
            raise LocalProtocolError("the connection switched protocols")
        self._io.check_open()
        if self._h11.our_state is not h11.SEND_BODY:
            raise LocalProtocolError("no response in progress: call start_response() first")

    def _response_head(self, status: int, headers: HeaderInput) -> h11.Response:
        self._check_can_respond()
        assert self._request is not None
        fields = encode_headers(headers)
        if self._must_close_after_response():
            fields.append((b"connection", b"close"))
        with h11_misuse():
            event = h11.Response(status_code=status, headers=fields, reason=reason_phrase(status))
        self._body_allowed = self._request.method != "HEAD" and status not in _NO_BODY_STATUSES
        return event

    def _plain_head(self, status: int, headers: HeaderInput, body_length: int) -> bytes | None:
        """The head of a kept-alive response to a complete GET-like request, written
        without h11 (the bytes h11 would write); None to go through h11."""
        request = self._request
        if (
            request is None
            or self._switched
            or self._io.closed
            or (
                self._plain_body is not None or self._answered
                if self._plain is not None
                else self._h11.our_state is not h11.SEND_RESPONSE
                or not (self._end_pending or self._h11.their_state is h11.DONE)
            )
            or request.method == "HEAD"
            or not isinstance(headers, (list, tuple))
            or not request.keep_alive
        ):
            return None
        return response_head(status, headers, body_length)

    def _must_close_after_response(self) -> bool:
        """Whether the unread request body rules out keeping the connection alive."""
        if self._their_state is not h11.SEND_BODY:
            return False
        if self._h11.they_are_waiting_for_100_continue:
            return True  # we cannot know whether the client will send the body
        assert self._request is not None
        length = self._request.content_length
        return length is not None and length - self._body_received > self._limits.max_drain_size

    async def _after_response(self) -> None:
        if self._h11.our_state is h11.MUST_CLOSE:
            await self._close(linger=not self._reading.busy)
