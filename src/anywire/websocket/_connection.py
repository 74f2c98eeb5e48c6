"""The one WebSocket connection driver, shared by the client and the server.

A :class:`WebSocket` runs over any ``anyio.abc.ByteStream`` with a wsproto
``Connection`` that has finished its handshake. It works in two modes:

* **owned** (``async with ws:``, what ``async with connect(url)`` and
  ``serve_websocket`` give you): a reader task and a keep-alive task run in
  the connection's own task group. Peer pings are answered and closes noticed
  even while the user only sends. Received messages wait in a bounded queue;
  when it is full the reader stops reading the socket.
* **pull** (``ws = await connect(url)``, the seed libraries' bare form): no
  task is started. ``receive()`` reads the socket itself, answers pings and
  sends keep-alive pings while it waits. A program that never calls
  ``receive()`` never reads the socket.

Background tasks never raise: a failure is recorded as the close code and
surfaces from the next ``send()`` or ``receive()`` as :class:`ConnectionClosed`.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    TextMessage,
)

from anywire._tasks import owned_task_group
from anywire.errors import ConcurrencyError, ConnectionClosed, ConnectionClosedOK
from anywire.websocket._frames import FastConnection
from anywire.websocket._keepalive import Keepalive

__all__ = ["WebSocket", "WebSocketOptions"]

_log = logging.getLogger("anywire.websocket")

#: Exceptions that mean the byte stream is gone (the peer or the network).
_STREAM_GONE = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


@dataclass(frozen=True)
class WebSocketOptions:
    """Settings shared by client and server connections.

    ``max_message_size`` counts bytes for binary messages and characters for
    text (``None`` lifts the bound: not recommended). ``max_queue`` is how many
    received messages may wait for ``receive()`` before the reader stops
    reading the socket. ``ping_timeout`` defaults to ``ping_interval``.
    """

    receive_bytes: int = 65536
    ping_interval: float | None = None
    ping_timeout: float | None = None
    max_message_size: int | None = 1024 * 1024
    max_queue: int = 16
    close_timeout: float = 10.0


class WebSocket:
    """One WebSocket connection (client or server side).

    ``send()`` a ``str`` (text message) or ``bytes`` (binary message);
    ``receive()`` returns the next message, or ``None`` when ``timeout``
    expires; ``close()`` runs the close handshake. Iterate with ``async for``.
    """

    def __init__(
        self,
        stream: ByteStream,
        protocol: Connection | FastConnection,
        *,
        subprotocol: str | None = None,
        options: WebSocketOptions = WebSocketOptions(),
        request_headers: Sequence[tuple[str, str]] = (),
        response_headers: Sequence[tuple[str, str]] = (),
        path: str = "/",
        logger: logging.Logger | None = None,
    ) -> None:
        self._stream = stream
        self._proto = protocol
        self.subprotocol = subprotocol
        self.options = options
        self.request_headers = list(request_headers)
        self.response_headers = list(response_headers)
        self.path = path
        self._log = logger or _log
        self._messages: deque[str | bytes] = deque()
        self._parts: list[Any] = []
        self._part_size = 0
        self._close_info: tuple[int, str] | None = None
        self._done = anyio.Event()
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._read_lock = anyio.Lock(fast_acquire=True)
        self._arrived = anyio.Event()
        self._space = anyio.Event()
        self._receiving = False
        self._closing = False
        self._reader_running = False
        self._changed = anyio.Event()
        self._keepalive = self._new_keepalive()
        self._cm: AbstractAsyncContextManager[WebSocket] | None = None

    # -- public API ---------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True until the close handshake starts or the connection is lost."""
        return self._close_info is None and self._proto.state is ConnectionState.OPEN

    @property
    def latency(self) -> float:
        """Round-trip time of the last answered keep-alive ping, in seconds."""
        return self._keepalive.latency if self._keepalive else 0.0

    @property
    def receive_bytes(self) -> int:
        return self.options.receive_bytes

    @property
    def ping_interval(self) -> float | None:
        return self.options.ping_interval

    @property
    def max_message_size(self) -> int | None:
        return self.options.max_message_size

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closed, else None."""
        return self._close_info[0] if self._close_info else None

    @property
    def close_reason(self) -> str | None:
        """The close reason once the connection is closed, else None."""
        return self._close_info[1] if self._close_info else None

    @property
    def remote_address(self) -> Any:
        return self._stream.extra(SocketAttribute.remote_address, None)

    @property
    def local_address(self) -> Any:
        return self._stream.extra(SocketAttribute.local_address, None)

    async def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary (bytes-like) message."""
        if isinstance(data, str):
            event: Message[Any] = TextMessage(data=data)
        elif isinstance(data, bytes | bytearray | memoryview):
            event = BytesMessage(data=bytes(data))
        else:
            raise TypeError(f"send() takes str or bytes, not {type(data).__name__}")
        await self._send_event(event)

    async def receive(self, timeout: float | None = None) -> str | bytes | None:
        """The next message; ``None`` if ``timeout`` seconds pass first.

        ``timeout=None`` waits as long as it takes; ``timeout=0`` returns a
        message only if one is already waiting. Raises
        :class:`ConnectionClosed` once the connection is closed and every
        received message was returned.
        """
        if self._receiving:
            raise ConcurrencyError("another task is already waiting in receive()")
        self._receiving = True
        try:
            if timeout is None:
                return await self._next_message()
            with anyio.move_on_after(timeout):
                return await self._next_message()
            return None
        finally:
            self._receiving = False

    async def close(self, reason: int | None = None, message: str | None = None) -> None:
        """Run the close handshake (code ``reason``, default 1000) and close the socket.

        Waits up to ``close_timeout`` for the peer's close frame. Safe to call
        more than once and from any task.
        """
        if self._done.is_set():
            return
        code = 1000 if reason is None else reason
        self._closing = True
        self._space.set()  # a reader held back by a full queue must see the close reply
        if self._proto.state is ConnectionState.OPEN:
            with suppress(ConnectionClosed):
                await self._send_event(CloseConnection(code=code, reason=message or ""))
        with anyio.move_on_after(self.options.close_timeout):
            await self._wait_closed()
        if not self._done.is_set():
            await self._finish(1006, "no close frame received")

    async def ping(self, data: bytes = b"") -> None:
        """Send a ping frame with ``data`` (at most 125 bytes)."""
        await self._send_event(Ping(payload=data))

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            message = await self.receive()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None
        assert message is not None
        return message

    async def __aenter__(self) -> WebSocket:
        self._cm = self._owned_mode()
        return await self._cm.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        assert self._cm is not None, "__aexit__ without __aenter__"
        cm, self._cm = self._cm, None
        return await cm.__aexit__(*exc_info)

    def __repr__(self) -> str:
        side = "client" if self._proto.client else "server"
        state = "closed" if self._done.is_set() else self._proto.state.name.lower()
        return f"<WebSocket {side} {state} subprotocol={self.subprotocol!r}>"

    # -- modes ----------------------------------------------------------------

    @asynccontextmanager
    async def _owned_mode(self) -> AsyncIterator[WebSocket]:
        async with owned_task_group() as tg:
            self._reader_running = True  # before the task runs: receive() must not read
            tg.start_soon(self._reader)
            if self._keepalive is not None:
                tg.start_soon(self._keepalive_loop)
            try:
                yield self
            except BaseException as exc:
                code = 1001 if isinstance(exc, anyio.get_cancelled_exc_class()) else 1011
                with anyio.CancelScope(shield=True):
                    await self.close(code)
                raise
            else:
                with anyio.CancelScope(shield=True):
                    await self.close()
            finally:
                tg.cancel_scope.cancel()

    async def _reader(self) -> None:
        try:
            while not self._done.is_set():
                await self._wait_for_space()
                data = await self._recv()
                with anyio.CancelScope(shield=True):
                    await self._process(data)
        except Exception as exc:
            self._log.exception("WebSocket reader failed")
            await self._finish(1011, f"internal error: {type(exc).__name__}")
        finally:
            # Cancelled or done: whoever waits (receive, close) now reads for itself.
            self._reader_running = False
            self._wake()

    async def _keepalive_loop(self) -> None:
        assert self._keepalive is not None
        while not self._done.is_set():
            await anyio.sleep_until(self._keepalive.deadline())
            await self._keepalive_tick()

    # -- receiving ------------------------------------------------------------

    async def _next_message(self) -> str | bytes:
        while True:
            if self._messages:
                message = self._messages.popleft()
                self._space.set()
                return message
            if self._close_info is not None and (self._done.is_set() or not self._reader_running):
                raise self._closed_error()
            if self._reader_running:
                self._arrived = anyio.Event()
                await self._arrived.wait()
            else:
                await self._pull_once()

    async def _pull_once(self) -> None:
        async with self._read_lock:
            if self._messages or self._done.is_set():
                return
            data = await self._recv_with_keepalive()
            with anyio.CancelScope(shield=True):
                await self._process(data)

    async def _wait_closed(self) -> None:
        while not self._done.is_set():
            if self._reader_running:
                self._changed = anyio.Event()
                await self._changed.wait()
                continue
            async with self._read_lock:
                if self._done.is_set():
                    return
                data = await self._recv_with_keepalive()
                with anyio.CancelScope(shield=True):
                    await self._process(data)
                self._messages.clear()

    async def _recv(self) -> bytes | None:
        try:
            return await self._stream.receive(self.options.receive_bytes)
        except _STREAM_GONE:
            return None

    async def _recv_with_keepalive(self) -> bytes | None:
        while self._keepalive is not None and not self._done.is_set():
            with anyio.move_on_after(self._keepalive.deadline() - anyio.current_time()):
                return await self._recv()
            with anyio.CancelScope(shield=True):
                await self._keepalive_tick()
        return None if self._done.is_set() else await self._recv()

    async def _wait_for_space(self) -> None:
        while len(self._messages) >= self.options.max_queue and not (
            self._closing or self._done.is_set()
        ):
            self._space = anyio.Event()
            await self._space.wait()

    async def _process(self, data: bytes | None) -> None:
        if self._done.is_set():
            return
        if self._proto.state is ConnectionState.CLOSED:
            await self._finish(1006, "")
            return
        self._proto.receive_data(data)
        for event in self._proto.events():
            await self._on_event(event)

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, TextMessage | BytesMessage):
            await self._on_data(event)
        elif isinstance(event, Ping):
            if self._proto.state is ConnectionState.OPEN:
                await self._send_event(event.response(), quiet=True)
        elif isinstance(event, Pong):
            if self._keepalive is not None:
                self._keepalive.pong_received(event.payload, anyio.current_time())
        elif isinstance(event, CloseConnection):
            await self._on_close(event)

    async def _on_data(self, event: Message[Any]) -> None:
        if self._closing or self._close_info is not None:
            return  # we are closing: data that arrives now is dropped
        size = self._part_size + len(event.data)
        limit = self.options.max_message_size
        if limit is not None and size > limit:
            await self._fail(1009, f"message larger than {limit}", drain=True)
            return
        if not event.message_finished:
            self._parts.append(event.data)
            self._part_size = size
            return
        if self._parts:
            self._parts.append(event.data)
            joiner = "" if isinstance(event, TextMessage) else b""
            message: str | bytes = joiner.join(self._parts)
            self._parts, self._part_size = [], 0
        else:
            message = event.data if isinstance(event, TextMessage) else bytes(event.data)
        self._messages.append(message)
        self._arrived.set()

    async def _on_close(self, event: CloseConnection) -> None:
        self._set_close_info(event.code, event.reason or "")
        state = self._proto.state
        if state is ConnectionState.REMOTE_CLOSING:
            await self._send_event(event.response(), quiet=True)
        elif state is ConnectionState.OPEN:
            # wsproto found a protocol error (1002, 1007, ...): tell the peer.
            await self._send_event(event.response(), quiet=True)
        await self._finish(event.code, event.reason or "")

    # -- sending ----------------------------------------------------------------

    async def _send_event(self, event: Event, *, quiet: bool = False) -> None:
        async with self._send_lock:
            if not self._may_send(event):
                if quiet:
                    return
                raise self._closed_error()
            data = self._proto.send(event)
            try:
                await self._stream.send(data)
            except BaseException as exc:
                # The frame may be half-written: the connection cannot go on.
                self._set_close_info(1006, "connection lost while sending")
                with contextlib.suppress(Exception):
                    await anyio.aclose_forcefully(self._stream)
                self._set_done()
                if not isinstance(exc, Exception):
                    raise
                if not quiet:
                    raise self._closed_error() from exc

    def _may_send(self, event: Event) -> bool:
        state = self._proto.state
        if state is ConnectionState.OPEN:
            return True
        # After the peer's close frame only our close frame may follow.
        return state is ConnectionState.REMOTE_CLOSING and isinstance(event, CloseConnection)

    # -- closing ------------------------------------------------------------------

    async def _keepalive_tick(self) -> None:
        assert self._keepalive is not None
        now = anyio.current_time()
        action = self._keepalive.due(now)
        if action == "ping":
            await self._send_event(Ping(payload=self._keepalive.ping_sent(now)), quiet=True)
        elif action == "timeout":
            self._log.info("keepalive ping timeout on %r", self)
            await self._fail(1011, "keepalive ping timeout")

    async def _fail(self, code: int, reason: str, *, drain: bool = False) -> None:
        """Close at once with ``code``: send a close frame if we can, then drop the socket.

        With ``drain`` (only from the task that reads the socket), first shut our side
        down and discard what the peer still sends until it closes (RFC 6455 7.1.1), so
        the kernel does not reset the connection under the peer's feet.
        """
        self._set_close_info(code, reason)
        with anyio.move_on_after(self.options.close_timeout, shield=True):
            if self._proto.state is ConnectionState.OPEN:
                await self._send_event(CloseConnection(code=code, reason=reason), quiet=True)
            if drain:
                await self._drain()
        await self._finish(code, reason)

    async def _drain(self) -> None:
        with contextlib.suppress(Exception):  # TLS and httpx streams cannot half-close
            await self._stream.send_eof()
        while await self._recv() is not None:
            pass

    async def _finish(self, code: int, reason: str) -> None:
        self._set_close_info(code, reason)
        if self._done.is_set():
            return
        await self._close_stream()
        self._set_done()

    async def _close_stream(self) -> None:
        """Close the byte stream within ``close_timeout``; never raises."""
        closed = False
        with anyio.move_on_after(self.options.close_timeout, shield=True):
            try:
                await self._stream.aclose()
                closed = True
            except Exception as exc:  # a TLS peer that left without close_notify, ...
                self._log.debug("error closing %r: %r", self, exc)
        if not closed:
            await anyio.aclose_forcefully(self._stream)

    def _set_close_info(self, code: int, reason: str) -> None:
        if self._close_info is None:
            self._close_info = (int(code), reason)

    def _set_done(self) -> None:
        self._done.set()
        self._wake()

    def _wake(self) -> None:
        self._arrived.set()
        self._space.set()
        self._changed.set()

    def _closed_error(self) -> ConnectionClosed:
        code, reason = self._close_info or (1006, "")
        return ConnectionClosed.for_code(code, reason)

    def _new_keepalive(self) -> Keepalive | None:
        interval = self.options.ping_interval
        if not interval:
            return None
        timeout = self.options.ping_timeout or interval
        return Keepalive(interval, timeout, anyio.current_time())
