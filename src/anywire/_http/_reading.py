"""The reading half of a server connection: request heads, bodies, disconnects."""

from __future__ import annotations

import math
from typing import NoReturn

import anyio
import h11

from ..errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from ._core import ConnectionCore, NextEvent
from ._plain import NotPlain, PlainRequest, parse_plain
from ._request import (
    FirstLine,
    Request,
    build_request,
    reason_phrase,
    refusal_for,
    status_for_bad_head,
)

__all__ = ["RequestReader"]

_HEAD_ERRORS = {
    431: "request head too large",
    501: "transfer coding not supported",
    505: "HTTP version not supported",
}


class RequestReader(ConnectionCore):
    """Reads requests for :class:`~anywire._http.ServerConnection` (see there)."""

    async def next_request(self) -> Request | None:
        """Wait for the next request head and return it.

        Returns ``None`` when there will be no more requests: the client
        closed between requests, the keep-alive idle timeout (or, on a fresh
        connection, the header timeout) expired before any byte came, or the
        connection was closed. Raises :class:`RemoteProtocolError` after
        answering bad input (``hint`` is the status sent: 400, 408, 431, 501
        for ``CONNECT`` or a transfer coding other than chunked, 505) and
        closing the connection. Raises
        :class:`LocalProtocolError` if the previous response is unfinished.
        """
        with self._reading:
            if not await self._start_cycle():
                return None
            return await self._read_head()

    async def receive_body(self) -> bytes:
        """Return the next chunk of the request body; ``b""`` once it is complete.

        The first call checks ``Content-Length`` against ``max_body_size``
        (413 before reading anything) and sends ``100 Continue`` if the client
        waits for it and no response has started; chunked bodies are counted
        as they arrive. Past the limit: 413 if no response has started (else
        just a close), then :class:`LimitExceeded`. A malformed body or a
        client that disconnects midway raises :class:`RemoteProtocolError`
        (``client_disconnected`` tells which).
        """
        with self._reading:
            self._check_request()
            if self._plain is not None:
                return self._take_plain_body()
            if self._their_state is h11.ERROR:
                self._io.check_open()  # bad input closed the connection: raise anyio's error
            if self._their_state is not h11.SEND_BODY:
                return b""
            self._io.check_open()
            await self._prepare_body_read()
            return await self._next_body_chunk()

    def _take_plain_body(self) -> bytes:
        body = self._plain_body
        if body is None:
            return b""
        self._io.check_open()
        self._plain_body = None
        self._body_received = len(body)
        return body

    async def read_body(self) -> bytes:
        """Return the whole request body (bounded by ``limits.max_body_size``)."""
        chunks = []
        while chunk := await self.receive_body():
            chunks.append(chunk)
        return b"".join(chunks)

    async def wait_disconnected(self) -> None:
        """Wait until the client ends or resets its side, once the request body is complete.

        For streamed responses (long polling, server-sent events) that must
        stop when the client leaves. Bytes that arrive meanwhile (a pipelined
        request) stay buffered for :meth:`next_request`; past
        ``limits.max_header_bytes`` of them, reading stops and this waits
        until cancelled. Also returns when the connection gets closed.
        """
        with self._reading:
            self._check_request()
            if not self.body_complete:
                raise LocalProtocolError("read the request body before waiting for a disconnect")
            try:
                await self._watch_for_eof()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return

    async def _watch_for_eof(self) -> None:
        buffered = 0
        while not self._io.peer_gone:
            if buffered > self._limits.max_header_bytes:
                await anyio.sleep_forever()
            data = await self._io.receive()
            self._feed(data)
            buffered += len(data)

    async def _start_cycle(self) -> bool:
        """Get h11 ready for a new request; False if the connection is over."""
        if self._switched:
            raise LocalProtocolError("the connection switched protocols")
        if self._io.closed:
            return False
        if self._plain is not None and self._answered:
            self._forget_plain()
        self._catch_up()  # an unanswered plain request: h11 tells what is missing
        ours, theirs = self._h11.our_state, self._their_state
        if ours is h11.IDLE and theirs is h11.IDLE:
            self._answered = False  # h11 may be fresh after a response it did not see
            self._request = None
            return True
        if ours in (h11.SEND_RESPONSE, h11.SEND_BODY):
            raise LocalProtocolError("the response to the previous request is not finished")
        if ours is h11.DONE and theirs is h11.SEND_BODY:
            await self._drain_body()
        if self._h11.our_state is h11.DONE and self._their_state is h11.DONE:
            self._h11.start_next_cycle()
            self._leave_h11()
            self._request = None
            return True
        await self._io.close_gracefully()
        return False

    async def _drain_body(self) -> None:
        """Read and drop the unread request body, within the drain limits."""
        deadline = self._deadline_after(self._limits.header_timeout)
        budget = self._limits.max_drain_size
        while self._their_state is h11.SEND_BODY and budget >= 0:
            try:
                event = self._next_event()
            except RemoteProtocolError:
                return
            if isinstance(event, h11.Data):
                budget -= len(event.data)
            elif event is h11.NEED_DATA:
                data = await self._io.receive_before(deadline)
                if data is None:
                    return
                self._h11.receive_data(data)

    async def _read_head(self) -> Request | None:
        head = await self._receive_head()
        if head is None:
            return None
        if isinstance(head, Request):
            request = head  # plain: nothing to refuse, no h11 state to track
        else:
            event, received = head
            refusal = refusal_for(event, self._limits, received)
            if refusal is not None:
                status, message = refusal
                await self._refuse(status, message)
                raise RemoteProtocolError(message, hint=status)
            request = build_request(event)
            self._end_pending = request.content_length == 0  # see _their_state
        self._request = request
        self._requests += 1
        self._body_received = 0
        return request

    async def _receive_head(self) -> Request | tuple[h11.Request, int] | None:
        """The next request: plain (see _plain.py), or h11's head and the bytes it came
        in (at most); None: no more requests."""
        pending = self._h11.trailing_data[0] if self._h11_active else self._buffer
        first_line = FirstLine(pending, self._limits.max_header_bytes)
        started = bool(pending)
        received = len(pending)
        deadline: float | None = None  # set when a read must wait (most heads come whole)
        parse = started or self._io.peer_gone  # with nothing buffered: nothing to parse
        while True:
            if parse:
                try:
                    event = self._parse_head()  # never PAUSED in a fresh cycle
                except RemoteProtocolError as exc:
                    await self._bad_head(first_line.value, exc)
                if isinstance(event, Request):
                    return event
                if isinstance(event, h11.Request):
                    return event, received
                if isinstance(event, h11.ConnectionClosed):
                    await self._io.aclose()
                    return None
            parse = True
            if deadline is None:
                deadline = self._head_deadline(started)
            data = await self._receive_before(deadline, started)
            if data is None:
                await self._head_timed_out(started)
                return None
            if data and not started:
                started = True
                deadline = None  # header_timeout runs from the first byte
            received += len(data)
            first_line.feed(data)
            self._feed(data)

    def _parse_head(self) -> Request | NextEvent:
        """A plain request from ``_buffer`` if it holds one, else h11's next event."""
        if not self._h11_active:
            plain = parse_plain(self._buffer, self._limits.max_header_bytes, self._plain_body_max)
            if isinstance(plain, PlainRequest):
                return self._start_plain(plain)
            if plain is NotPlain.INCOMPLETE and not self._io.peer_gone:
                return h11.NEED_DATA
            self._to_h11()
        return self._next_event()

    async def _receive_before(self, deadline: float, started: bool) -> bytes | None:
        """Read before ``deadline`` (None when it passes first).

        Before the first byte of a head, inside :meth:`idle_timeouts`, the
        deadline is that block's (or its watch's): when it passes, the block is
        cancelled.
        """
        scope = self._idle_scope
        if started or scope is None:
            return await self._io.receive_before(deadline)
        watch = self._idle_watch
        if watch is not None:
            waiting = watch.waiting
            waiting[self] = deadline
            try:
                data = await self._io.receive()
            finally:
                waiting.pop(self, None)
        else:
            scope.deadline = deadline
            try:
                data = await self._io.receive()
            finally:
                scope.deadline = math.inf
        if scope.cancel_called:  # the deadline passed as the bytes came:
            await anyio.lowlevel.checkpoint()  # leave now, not in the application
        return data

    def _head_deadline(self, started: bool) -> float:
        """The head deadline: header_timeout from the first byte, keep_alive_timeout before."""
        if self._requests == 0:
            if self._first_deadline is None:
                self._first_deadline = self._deadline_after(self._limits.header_timeout)
            return self._first_deadline
        if started:
            return self._deadline_after(self._limits.header_timeout)
        return self._deadline_after(self._limits.keep_alive_timeout)

    async def _bad_head(self, first_line: bytes, exc: RemoteProtocolError) -> NoReturn:
        """Refuse a head h11 could not parse."""
        status = status_for_bad_head(first_line, exc.hint or 400)
        message = _HEAD_ERRORS.get(status, "malformed request head")
        await self._refuse(status, message)
        raise RemoteProtocolError(f"{message} ({exc})", hint=status) from exc

    async def _head_timed_out(self, started: bool) -> None:
        """408 if part of a head came, else a quiet close (and no more requests)."""
        if not started:
            await self._io.close_gracefully()
            return
        message = "request head not received in time"
        await self._refuse(408, message)
        raise RemoteProtocolError(message, hint=408)

    async def _prepare_body_read(self) -> None:
        assert self._request is not None
        limit = self._limits.max_body_size
        length = self._request.content_length
        if limit is not None and length is not None and length > limit:
            await self._too_large()
        if (
            self._h11.they_are_waiting_for_100_continue
            and self._h11.our_state is h11.SEND_RESPONSE
            and not self._writing.busy
        ):
            with self._writing:
                await self._send_events(
                    h11.InformationalResponse(
                        status_code=100, headers=[], reason=reason_phrase(100)
                    )
                )

    async def _next_body_chunk(self) -> bytes:
        while True:
            try:
                event = self._next_event()
            except RemoteProtocolError as exc:
                await self._body_error(exc)
            if isinstance(event, h11.Data):
                return await self._count_body(bytes(event.data))
            if event is not h11.NEED_DATA:
                return b""  # EndOfMessage, or h11 paused on a proposed upgrade
            self._h11.receive_data(await self._io.receive())

    async def _count_body(self, data: bytes) -> bytes:
        self._body_received += len(data)
        limit = self._limits.max_body_size
        if limit is not None and self._body_received > limit:
            await self._too_large()
        assert self._request is not None
        if self._body_received == self._request.content_length:
            self._next_event()  # the EndOfMessage, known without reading: the body is complete
        return data

    async def _too_large(self) -> NoReturn:
        limit = self._limits.max_body_size
        await self._refuse(413, "request body too large")
        raise LimitExceeded(f"request body larger than max_body_size ({limit} bytes)", limit=limit)

    async def _body_error(self, exc: RemoteProtocolError) -> NoReturn:
        if self._io.peer_gone:
            await self._io.abort()
            message = "the client closed the connection before the end of the request body"
            raise RemoteProtocolError(message, hint=400) from exc
        await self._refuse(400, "malformed request body")
        raise RemoteProtocolError(f"malformed request body ({exc})", hint=400) from exc
