"""The Engine.IO client: python-engineio's ``AsyncClient`` API, and ``async with connect(url)``.

Who owns the tasks (see docs/engineio-client.md):

* ``async with connect(url) as client:`` and ``async with AsyncClient() as eio:``
  -- the block owns a task group; ``connect()`` starts the connection's
  supervisor in it (reader, writer, heartbeat, upgrade, reconnects); leaving
  the block sends the CLOSE packet, closes the transport and cancels the rest.
* the seed's bare form ``await eio.connect(url)`` then ``await eio.wait()`` --
  ``connect()`` runs the handshake and starts nothing; ``wait()`` runs the
  connection's tasks in a task group owned by the task that calls it, and
  returns when the client is closed or the reconnect policy gives up.
"""

from __future__ import annotations

import logging
import ssl
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, Self

import anyio
import httpx
from anyio.abc import TaskGroup

from anywire._tasks import owned_task_group
from anywire.engineio._client_handlers import (
    EVENTS,
    MAX_HANDLER_TASKS,
    ClientHandlers,
    Handler,
    Message,
)
from anywire.engineio._client_transports import Link, LinkSettings
from anywire.engineio._client_utils import (
    BackgroundTask,
    ClientState,
    Queue,
    ready,
    reason,
    transports_of,
)
from anywire.engineio._errors import (
    ClientConnectionError,
    QueueFull,
    SessionClosed,
)
from anywire.engineio._packets import DEFAULT_JSON, JsonModule
from anywire.engineio._session import Closed, DisconnectReason
from anywire.errors import LimitExceeded, LocalProtocolError
from anywire.reconnect import Reconnector, ReconnectPolicy

__all__ = ["AsyncClient"]

_LOGGER: Final = logging.getLogger("anywire.engineio.client")
_S = ClientState


class AsyncClient(ClientHandlers, anyio.AsyncContextManagerMixin):
    """An Engine.IO v4 client for asyncio or trio (python-engineio's ``AsyncClient``).

    The first eight parameters are python-engineio's (``http_session`` takes
    an ``httpx.AsyncClient``; ``websocket_extra_options`` holds keyword options
    of :func:`anywire.websocket.connect`; ``handle_sigint`` is accepted and
    installs nothing: see the docs). Keyword-only additions: ``reconnect`` (a
    :class:`~anywire.reconnect.ReconnectPolicy`; ``None``: never reconnect, as
    python-engineio), ``queue_while_disconnected`` (queue ``send()`` while
    (re)connecting, up to half of ``max_queue`` messages, else raise),
    ``ssl_context`` and ``proxy`` (for the httpx client built here),
    ``max_queue`` (the bound of the outgoing queue), ``decode_json`` (give
    text messages that parse as JSON decoded, as python-engineio does).
    """

    reason = reason
    event_names = EVENTS

    def __init__(
        self,
        logger: bool | logging.Logger = False,
        json: JsonModule | None = None,
        request_timeout: float = 5,
        http_session: httpx.AsyncClient | None = None,
        ssl_verify: bool = True,
        handle_sigint: bool = True,
        websocket_extra_options: Mapping[str, Any] | None = None,
        timestamp_requests: bool = True,
        *,
        reconnect: ReconnectPolicy | None = None,
        queue_while_disconnected: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | None = None,
        max_queue: int = 1024,
        decode_json: bool = True,
    ) -> None:
        if http_session is not None and not isinstance(http_session, httpx.AsyncClient):
            raise TypeError("http_session must be an httpx.AsyncClient (aiohttp is asyncio-only)")
        if max_queue < 2:
            raise ValueError("max_queue must be >= 2")
        self.logger = logger if isinstance(logger, logging.Logger) else _LOGGER
        self.json: JsonModule = json if json is not None else DEFAULT_JSON
        self.request_timeout = float(request_timeout)
        self.http_session = http_session
        self.ssl_verify = ssl_verify
        self.handle_sigint = handle_sigint
        self.websocket_extra_options = dict(websocket_extra_options or {})
        self.timestamp_requests = timestamp_requests
        self.reconnect = reconnect
        self.queue_while_disconnected = queue_while_disconnected
        self.ssl_context = ssl_context
        self.proxy = proxy
        self.max_queue = max_queue
        self.decode_json = decode_json
        self.handlers: dict[str, Handler] = {}
        #: Messages sent while disconnected that were never delivered (after a give-up).
        self.unsent: list[str | bytes] = []
        self._state = _S.DISCONNECTED
        self._settings: LinkSettings | None = None
        self._link: Link | None = None
        self._http: httpx.AsyncClient | None = None
        self._tg: TaskGroup | None = None
        self._owned = False
        self._supervising = False
        self._deferred: list[BackgroundTask] = []
        self._backlog: deque[str | bytes] = deque()
        self._inbox: Queue[Message] | None = None
        self._reconnector: Reconnector[Link] | None = None
        self._closing = False
        self._close_reason: str | None = None
        self._last_closed: Closed | None = None
        self._end: BaseException | None = None
        self._done: anyio.Event | None = None
        self._slots: anyio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"<AsyncClient {self._state.value} sid={self.sid!r} transport={self.transport()}>"

    # -- state --------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        """disconnected, connecting, connected, reconnecting or closed."""
        return self._state

    @property
    def sid(self) -> str | None:
        """The session id while connected, else ``None`` (python-engineio's ``sid``)."""
        link = self._link
        return link.sid if link is not None and self._state is _S.CONNECTED else None

    @property
    def current_transport(self) -> str | None:
        return self.transport()

    def transport(self) -> str | None:
        """``'polling'`` or ``'websocket'`` while connected, else ``None``."""
        link = self._link
        connected = link is not None and self._state is _S.CONNECTED
        return link.transport.value if connected and link is not None else None

    # -- connecting -------------------------------------------------------------------

    async def connect(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        transports: str | Sequence[str] | None = None,
        engineio_path: str = "engine.io",
    ) -> None:
        """Connect to ``url``: run the handshake (and fire ``connect``).

        Raises a :class:`ClientConnectionError` subclass when that fails. Inside
        ``async with`` the connection's tasks start now; otherwise they run in
        :meth:`wait`.
        """
        if self._state not in (_S.DISCONNECTED, _S.CLOSED):
            raise ValueError("Client is not in a disconnected state")
        if self._supervising and self._done is not None:
            await self._done.wait()  # the last connection is still closing its transport
        self._settings = self._link_settings(url, headers, transports, engineio_path)
        self._reset()
        self._state = _S.CONNECTING
        try:
            link = await self._open_link()
        except BaseException:
            self._state = _S.DISCONNECTED
            with anyio.CancelScope(shield=True):
                await self._close_http()
            if self._done is not None:
                self._done.set()  # nothing to wait for
            raise
        policy = self.reconnect if self.reconnect is not None else ReconnectPolicy.never()
        self._reconnector = Reconnector(policy, logger=self.logger)
        await self._reconnector.next_attempt(ready(link))
        if self._tg is not None:
            self._tg.start_soon(self._supervise, link)

    async def wait(self) -> None:
        """Wait until the client is closed, or the reconnect policy gave up.

        In the bare form (no ``async with``) this runs the connection: its
        tasks and those of :meth:`start_background_task` live in a task group
        owned by the calling task, and are cancelled when it returns.
        """
        if self._supervising or self._owned:
            if self._done is not None:
                await self._done.wait()
            return
        link = self._link
        if link is None or self._state not in (_S.CONNECTED, _S.CONNECTING):
            return
        async with owned_task_group() as tg:
            self._tg = tg
            self._start_deferred()
            try:
                await self._supervise(link)
            finally:
                tg.cancel_scope.cancel()
                self._tg = None

    async def disconnect(self, abort: bool = False, reason: str | None = None) -> None:
        """Close: queued messages, the CLOSE packet, then the transport; fire ``disconnect``.

        ``abort=True`` does not wait for the connection's tasks to end (they
        end by themselves, in the group that owns them). ``reason`` is what
        the ``disconnect`` handler gets (default ``reason.CLIENT_DISCONNECT``).
        """
        if self._state in (_S.DISCONNECTED, _S.CLOSED) or self._closing:
            if self._closing and not abort and self._done is not None:
                await self._done.wait()
            return
        self._closing = True
        self._close_reason = reason
        if self._reconnector is not None:
            self._reconnector.close()  # a backoff wait ends at once
        link = self._link
        if self._supervising:
            if link is not None:
                await link.aclose(wait=not abort)
            if not abort and self._done is not None:
                await self._done.wait()
            return
        with anyio.CancelScope(shield=True):
            if link is not None:
                await link.aclose()
            await self._finish()

    # -- sending and receiving --------------------------------------------------------

    async def send(self, data: str | bytes | list[Any] | dict[str, Any]) -> None:
        """Send a message: ``str`` as text, ``bytes`` as binary, ``list``/``dict`` as JSON.

        Returns once the message is queued (waits while the outgoing queue is
        over half full). While (re)connecting, the message is queued for the
        next session if ``queue_while_disconnected``; otherwise, and once
        closed, raises :class:`~anywire.engineio.exceptions.SocketIsClosedError`.
        """
        message = self._encode(data)
        link = self._link
        if link is not None and self._state is _S.CONNECTED and not link.is_closed:
            try:
                await link.send(message)
                return
            except SessionClosed:
                if not self._may_queue():
                    raise
        elif not self._may_queue():
            why = link.closed.reason if link is not None and link.closed else "not connected"
            raise SessionClosed(why)
        if len(self._backlog) >= self.max_queue // 2:
            limit = self.max_queue // 2
            raise QueueFull(f"{limit} messages already wait for a connection", limit=limit)
        self._backlog.append(message)

    async def receive(self) -> Message:
        """The next message (``async with connect(url)`` form only).

        Raises :class:`SessionClosed` once the connection ended (with the
        loss as its cause), or the reconnect policy's error when it gave up.
        """
        inbox = self._inbox
        if inbox is None:
            raise RuntimeError("receive() needs anywire.engineio.connect(); use on('message')")
        try:
            return await inbox.get()
        except anyio.EndOfStream:
            error = self._end_error()
            if error is not None:
                raise error from error.__cause__
            closed = self._last_closed
            raise SessionClosed(closed.reason if closed else "closed") from None

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        """The next message; stops when closed by either side, raises after a loss."""
        try:
            return await self.receive()
        except SessionClosed as exc:
            if self._end_error() is None:
                raise StopAsyncIteration from exc
            raise

    # -- async with -------------------------------------------------------------------

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncGenerator[Self]:
        if self._owned or self._tg is not None:
            raise RuntimeError("this client already runs in a task group")
        async with owned_task_group() as tg:
            self._tg, self._owned = tg, True
            self._start_deferred()
            try:
                yield self
            finally:
                with anyio.move_on_after(2 * self.request_timeout + 1, shield=True):
                    await self.disconnect()
                tg.cancel_scope.cancel()
                self._tg, self._owned = None, False

    # -- internals: one session after another --------------------------------------------

    async def _open_link(self) -> Link:
        assert self._settings is not None
        link = Link(self._settings, self._http_client(), self._deliver)
        await link.open()
        self._flush_backlog(link)
        self._link = link
        self._state = _S.CONNECTED
        try:
            await self._fire("connect")
        except Exception as exc:
            link.reported = True
            with anyio.CancelScope(shield=True):
                await link.aclose()
            raise ClientConnectionError(f"Connect handler failed: {exc}") from exc
        return link

    async def _supervise(self, link: Link) -> None:
        self._supervising = True
        try:
            while True:
                await self._run_link(link)
                if not self._should_reconnect(link):
                    return
                next_link = await self._reconnect_after(link)
                if next_link is None:
                    return
                link = next_link
                if self._closing:
                    with anyio.CancelScope(shield=True):
                        await link.aclose()
                    return
        finally:
            self._supervising = False
            with anyio.CancelScope(shield=True):
                await self._finish()

    async def _run_link(self, link: Link) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(link.run)
            await link.closed_event.wait()
            if self._should_reconnect(link):
                self._state = _S.RECONNECTING
            else:  # closed now, not once the transport is closed (that may take a while)
                self._state = _S.CLOSED
                if self._inbox is not None:
                    self._inbox.close()
            await self._report_closed(link)

    def _should_reconnect(self, link: Link) -> bool:
        closed = link.closed
        if self._closing or self.reconnect is None or closed is None:
            return False
        return closed.reason is not DisconnectReason.SERVER_DISCONNECT

    async def _reconnect_after(self, link: Link) -> Link | None:
        assert self._reconnector is not None
        assert link.closed is not None
        self._take_unsent(link)
        self._reconnector.lost(link.closed.error)
        try:
            return await self._reconnector.next_attempt(self._open_link)
        except anyio.ClosedResourceError:
            return None  # disconnect() during the backoff
        except Exception as exc:
            self._end = exc
            self.logger.warning("not reconnecting: %r", exc)
            return None

    async def _report_closed(self, link: Link) -> None:
        closed = link.closed
        if link.reported or closed is None:
            return
        link.reported = True
        self._last_closed = closed
        why: str = closed.reason
        if self._closing and self._close_reason is not None:
            why = self._close_reason
        if closed.error is not None:
            self.logger.info("connection lost (%s): %r", why, closed.error)
        try:
            await self._fire("disconnect", why)
        except Exception:
            self.logger.exception("disconnect handler error")

    async def _finish(self) -> None:
        link = self._link
        if link is not None:
            self._take_unsent(link)
            await self._report_closed(link)
        if self._reconnector is not None:
            self._reconnector.close()
        if self._backlog:
            self.unsent.extend(self._backlog)
            self._backlog.clear()
        if self.unsent:
            self.logger.warning("%d queued messages were not sent", len(self.unsent))
        self._state = _S.CLOSED
        if self._inbox is not None:
            self._inbox.close()
        await self._close_http()
        if self._done is not None:
            self._done.set()

    # -- internals: helpers ------------------------------------------------------------

    def _reset(self) -> None:
        self._closing = False
        self._close_reason = None
        self._last_closed = None
        self._end = None
        self._link = None
        self.unsent = []
        self._done = anyio.Event()
        self._slots = anyio.Semaphore(MAX_HANDLER_TASKS)
        if self._inbox is not None:
            self._inbox = Queue(self._inbox.maxsize)

    def _link_settings(
        self,
        url: str,
        headers: Mapping[str, str] | None,
        transports: str | Sequence[str] | None,
        engineio_path: str,
    ) -> LinkSettings:
        return LinkSettings(
            url=url,
            engineio_path=engineio_path,
            headers=dict(headers or {}),
            transports=transports_of(transports),
            request_timeout=self.request_timeout,
            timestamp_requests=self.timestamp_requests,
            json=self.json,
            websocket_options=self.websocket_extra_options,
            max_queue=self.max_queue,
            proxy=self.proxy if self.http_session is None else None,
            logger=self.logger,
        )

    def _http_client(self) -> httpx.AsyncClient:
        if self.http_session is not None:
            return self.http_session
        if self._http is None:
            verify: ssl.SSLContext | bool = self.ssl_context or self.ssl_verify
            self._http = httpx.AsyncClient(
                verify=verify, proxy=self.proxy, timeout=self.request_timeout
            )
        return self._http

    async def _close_http(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def _flush_backlog(self, link: Link) -> None:
        while self._backlog:
            message = self._backlog.popleft()
            try:
                link.send_nowait(message)
            except (LimitExceeded, LocalProtocolError) as exc:
                self.unsent.append(message)
                self.logger.warning("a queued message cannot be sent: %s", exc)

    def _take_unsent(self, link: Link) -> None:
        """Messages the lost session never wrote go first in the backlog."""
        unsent, link.session.unsent = link.session.unsent, ()
        self._backlog.extendleft(reversed(unsent))

    def _may_queue(self) -> bool:
        """Whether ``send()`` may keep a message for the next session."""
        if not self.queue_while_disconnected or self._closing:
            return False
        if self._state is _S.CONNECTING:
            return True
        if self.reconnect is None or self._state not in (_S.CONNECTED, _S.RECONNECTING):
            return False
        link = self._link
        return link is None or link.closed is None or self._should_reconnect(link)

    def _end_error(self) -> BaseException | None:
        if self._end is not None:
            return self._end
        closed = self._last_closed
        if closed is None or closed.reason is not DisconnectReason.TRANSPORT_ERROR:
            return None
        if self._closing:
            return None
        error = SessionClosed(closed.reason)
        error.__cause__ = closed.error
        return error
