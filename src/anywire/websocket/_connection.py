"""The one WebSocket connection driver, shared by the client and the server.

A :class:`WebSocket` runs over any ``anyio.abc.ByteStream`` with a wsproto
``Connection`` that has finished its handshake. It works in two modes:

* **owned** (``async with ws:``, what ``async with connect(url)`` and
  ``serve_websocket`` give you): the connection has its own task group. Peer
  pings are answered and closes noticed even while the user only sends: when
  no task has been in ``receive()`` for a short while, a reader task reads for
  it. Messages it receives wait in a bounded queue; when the queue is full
  the reader stops reading the socket. While the user receives, ``receive()``
  reads the socket itself (no hand-over between tasks per message) and the
  reader task ends.
* **pull** (``ws = await connect(url)``, the seed libraries' bare form): no
  task is started. ``receive()`` reads the socket itself, answers pings and
  sends keep-alive pings while it waits. A program that never calls
  ``receive()`` never reads the socket.

One task at a time reads the socket (the *read right*); others wait for what it
delivers. Background tasks never raise: a failure is recorded as the close code and
surfaces from the next ``send()`` or ``receive()`` as :class:`~anywire.errors.ConnectionClosed`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Final, cast

import anyio
from anyio.abc import ByteStream, SocketAttribute, TaskGroup
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

from anywire.errors import ConcurrencyError, ConnectionClosed
from anywire.streams import BufferedStream
from anywire.websocket._common import MessageSource
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

_OPEN: Final = ConnectionState.OPEN

#: How long a reader task waits, after ``receive()`` read the socket, before it
#: reads in the user's place (owned mode). Keep-alive timeouts shorten it.
_READER_GRACE: Final = 0.2


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


class WebSocket(MessageSource):
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
        self._stream = _unwrap(stream)
        self._proto = protocol
        self.subprotocol = subprotocol
        self.options = options
        self.request_headers = list(request_headers)
        self.response_headers = list(response_headers)
        self.path = path
        self._log = logger or _log
        self._receive_bytes = options.receive_bytes
        # Received messages; a deque (~700 bytes) only once the first one comes.
        self._messages: deque[str | bytes] | tuple[()] = ()
        self._parts: list[Any] = []
        self._part_size = 0
        self._close_info: tuple[int, str] | None = None
        self._done = False  # the stream is closed: nothing more comes or goes
        self._closing = False  # close() started: received data is dropped
        self._receiving = False  # a task is in receive()
        self._reading = False  # a task holds the read right (in stream.receive or after)
        self._reads = 0  # socket reads done by receive() itself (the reader task defers to them)
        self._changed: anyio.Event | None = None  # set (and dropped) when the read state changes
        self._sending = False  # a task is writing a frame
        self._send_waiters: list[anyio.Event] = []
        self._tg: TaskGroup | None = None  # owned mode: where the reader task starts
        self._reader_alive = False
        self._keepalive = self._new_keepalive()

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
        if type(data) is not str and not isinstance(data, str):
            if not isinstance(data, bytes | bytearray | memoryview):
                raise TypeError(f"send() takes str or bytes, not {type(data).__name__}")
            data = bytes(data)
        if type(self._proto) is FastConnection:  # the frame without building the event
            await self._send_event(None, message=data)
        else:
            event: Message[Any] = (
                TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
            )
            await self._send_event(event)

    async def send_many(self, messages: Sequence[str | bytes | bytearray | memoryview]) -> None:
        """Send ``messages`` in order, each as :meth:`send` would, in one write.

        One system call for a batch that is ready at once (the Engine.IO
        server's writer drains its queue this way).
        """
        batch = [m if type(m) is str or type(m) is bytes else _message_data(m) for m in messages]
        if type(self._proto) is not FastConnection or len(batch) < 2:
            for message in batch:
                await self.send(message)
            return
        await self._send_event(None, batch=batch)

    async def receive(self, timeout: float | None = None) -> str | bytes | None:
        """The next message; ``None`` if ``timeout`` seconds pass first.

        ``timeout=None`` waits as long as it takes; ``timeout=0`` returns a
        message only if one is already waiting. Raises
        :class:`~anywire.errors.ConnectionClosed` once the connection is closed and every
        received message was returned.
        """
        if self._receiving:
            raise ConcurrencyError("another task is already waiting in receive()")
        self._receiving = True
        try:
            if self._messages:
                return self._pop()
            if timeout is None:
                return await self._next_message()
            with anyio.move_on_after(timeout):
                return await self._next_message()
            return None
        finally:
            self._receiving = False
            if not self._reader_alive and self._tg is not None and not self._done:
                self._start_reader(grace=True)

    async def close(self, reason: int | None = None, message: str | None = None) -> None:
        """Run the close handshake (code ``reason``, default 1000) and close the socket.

        Waits up to ``close_timeout`` for the peer's close frame. Safe to call
        more than once and from any task.
        """
        if self._done:
            return
        code = 1000 if reason is None else reason
        self._closing = True
        self._notify()  # a reader held back by a full queue must see the close reply
        if self._proto.state is ConnectionState.OPEN:
            with suppress(ConnectionClosed):
                await self._send_event(CloseConnection(code=code, reason=message or ""))
        with anyio.move_on_after(self.options.close_timeout):
            await self._wait_closed()
        if not self._done:
            await self._finish(1006, "no close frame received")

    async def ping(self, data: bytes = b"") -> None:
        """Send a ping frame with ``data`` (at most 125 bytes)."""
        await self._send_event(Ping(payload=data))

    async def __aenter__(self) -> WebSocket:
        if self._tg is not None:
            raise RuntimeError("this WebSocket is already in an 'async with' block")
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._start_reader(grace=False)
        if self._keepalive is not None:
            tg.start_soon(self._keepalive_loop)
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        """Close (1000; 1001 if the block was cancelled, 1011 if it raised), end the tasks.

        The block's own exception propagates as is (never in an exception group):
        the connection's tasks record their failures instead of raising.
        """
        tg = self._tg
        assert tg is not None, "__aexit__ without __aenter__"
        exc = exc_info[1]
        try:
            with anyio.CancelScope(shield=True):
                if exc is None:
                    await self.close()
                elif isinstance(exc, anyio.get_cancelled_exc_class()):
                    await self.close(1001)
                else:
                    await self.close(1011)
        finally:
            self._tg = None
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        return None

    def __repr__(self) -> str:
        side = "client" if self._proto.client else "server"
        state = "closed" if self._done else self._proto.state.name.lower()
        return f"<WebSocket {side} {state} subprotocol={self.subprotocol!r}>"

    # -- the reader task (owned mode) ----------------------------------------------

    def _start_reader(self, *, grace: bool) -> None:
        assert self._tg is not None
        self._reader_alive = True
        self._tg.start_soon(self._reader, grace)

    async def _reader(self, grace: bool) -> None:
        """Read while nobody is in ``receive()``; end when ``receive()`` reads itself.

        With ``grace``, first wait until ``receive()`` has read nothing for a while:
        a task that receives in a loop is away only between two messages.
        """
        try:
            if grace:
                await self._defer_to_receive()
            while not self._done and not self._receiving:
                if self._reading or (
                    len(self._messages) >= self.options.max_queue and not self._closing
                ):
                    await self._wait_changed()
                else:
                    await self._read_once(keepalive=False)
        except Exception as exc:
            self._log.exception("WebSocket reader failed")
            await self._finish(1011, f"internal error: {type(exc).__name__}")
        finally:
            self._reader_alive = False
            self._notify()

    async def _defer_to_receive(self) -> None:
        grace = _READER_GRACE
        if self._keepalive is not None:
            grace = min(grace, self._keepalive.timeout / 4)
        while not self._done and not self._receiving:
            reads = self._reads
            await anyio.sleep(grace)
            if self._reads == reads:
                return

    async def _keepalive_loop(self) -> None:
        assert self._keepalive is not None
        while not self._done:
            await anyio.sleep_until(self._keepalive.deadline())
            await self._keepalive_tick()

    # -- receiving ------------------------------------------------------------

    def _pop(self) -> str | bytes:
        message = self._messages.popleft()  # type: ignore[union-attr]  # not empty: a deque
        if self._changed is not None:
            self._notify()  # a reader may wait for space in the queue
        return message

    async def _next_message(self) -> str | bytes:
        while True:
            if self._messages:
                return self._pop()
            if self._close_info is not None and (self._done or not self._reading):
                raise self._closed_error()
            if self._reading:  # another task reads: wait for what it delivers
                await self._wait_changed()
            else:
                await self._read_once(keepalive=self._tg is None)
                self._reads += 1

    async def _read_once(self, *, keepalive: bool) -> None:
        """Take the read right, read the socket once and process what came."""
        self._reading = True
        try:
            data = await (self._recv_with_keepalive() if keepalive else self._recv())
            if self._done:
                return
            slow = self._feed(data)
            if slow is not None:
                with anyio.CancelScope(shield=True):
                    await self._process_slowly(slow)
        finally:
            self._reading = False
            self._notify()

    async def _wait_closed(self) -> None:
        while not self._done:
            if self._reading:
                await self._wait_changed()
                continue
            await self._read_once(keepalive=self._tg is None)
            self._messages = ()

    async def _wait_changed(self) -> None:
        """Wait for the next :meth:`_notify` (read right released, message, close)."""
        event = self._changed
        if event is None:
            event = self._changed = anyio.Event()
        await event.wait()

    def _notify(self) -> None:
        event = self._changed
        if event is not None:
            self._changed = None
            event.set()

    async def _recv(self) -> bytes | None:
        try:
            return await self._stream.receive(self._receive_bytes)
        except _STREAM_GONE:
            return None

    async def _recv_with_keepalive(self) -> bytes | None:
        while self._keepalive is not None and not self._done:
            with anyio.move_on_after(self._keepalive.deadline() - anyio.current_time()):
                return await self._recv()
            with anyio.CancelScope(shield=True):
                await self._keepalive_tick()
        return None if self._done else await self._recv()

    def _feed(self, data: bytes | None) -> Iterator[Event | None] | None:
        """Process ``data`` as far as it takes no I/O; return the events that do.

        Data messages are queued and pongs recorded here. At the first event that
        needs an answer (ping, close, an oversize message) this stops and returns
        the rest, that event first, to handle in order: the protocol's state must
        not run ahead of the answers (a ping before a close frame gets its pong).
        """
        proto = self._proto
        if proto.state is ConnectionState.CLOSED:
            return iter((None,))  # None: the connection was already closed
        proto.receive_data(data)
        events = proto.events()
        for event in events:
            kind = type(event)
            if kind is TextMessage or kind is BytesMessage:
                if self._queue_data(event):  # type: ignore[arg-type]
                    continue
            elif kind is Pong and self._keepalive is not None:
                self._keepalive.pong_received(event.payload, anyio.current_time())  # type: ignore[attr-defined]
                continue
            elif kind is Pong:
                continue
            return itertools.chain((event,), events)
        return None

    async def _process_slowly(self, events: Iterator[Event | None]) -> None:
        for event in events:
            if self._done:
                return
            if event is None:
                await self._finish(1006, "")
            elif isinstance(event, TextMessage | BytesMessage):
                if not self._queue_data(event):
                    limit = self.options.max_message_size
                    await self._fail(1009, f"message larger than {limit}", drain=True)
            elif isinstance(event, Ping):
                if self._proto.state is ConnectionState.OPEN:
                    await self._send_event(event.response(), quiet=True)
            elif isinstance(event, Pong):
                if self._keepalive is not None:
                    self._keepalive.pong_received(event.payload, anyio.current_time())
            elif isinstance(event, CloseConnection):
                await self._on_close(event)

    def _queue_data(self, event: Message[Any]) -> bool:
        """Queue a (part of a) message; False if it makes the message too big."""
        if self._closing or self._close_info is not None:
            return True  # we are closing: data that arrives now is dropped
        size = self._part_size + len(event.data)
        limit = self.options.max_message_size
        if limit is not None and size > limit:
            return False
        if not event.message_finished:
            self._parts.append(event.data)
            self._part_size = size
            return True
        if self._parts:
            self._parts.append(event.data)
            joiner = "" if isinstance(event, TextMessage) else b""
            message: str | bytes = joiner.join(self._parts)
            self._parts, self._part_size = [], 0
        else:
            message = event.data if isinstance(event, TextMessage) else bytes(event.data)
        messages = self._messages
        if not isinstance(messages, deque):
            messages = self._messages = deque()
        messages.append(message)
        return True

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

    async def _send_event(
        self,
        event: Event | None,
        *,
        quiet: bool = False,
        message: str | bytes = b"",
        batch: Sequence[str | bytes] | None = None,
    ) -> None:
        """Send ``event``, or (``None``) the whole data ``message`` or the messages of
        ``batch`` (``FastConnection`` only)."""
        if self._sending:  # one frame at a time; the others wait in turn
            await self._wait_send_turn()
        else:
            self._sending = True
        try:
            if self._proto.state is not _OPEN and not self._may_send(event):
                if quiet:
                    return
                raise self._closed_error()
            if event is None:
                proto = cast("FastConnection", self._proto)
                if batch is None:
                    data = proto.send_message(message)
                else:
                    data = b"".join([proto.send_message(m) for m in batch])
            else:
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
        finally:
            self._pass_send_turn()

    async def _wait_send_turn(self) -> None:
        """Wait until the sending task hands the turn over (first come, first served)."""
        turn = anyio.Event()
        self._send_waiters.append(turn)
        try:
            await turn.wait()
        except BaseException:
            if turn.is_set():  # handed over, but we leave: pass it on
                self._pass_send_turn()
            else:
                self._send_waiters.remove(turn)
            raise

    def _pass_send_turn(self) -> None:
        if self._send_waiters:
            self._send_waiters.pop(0).set()  # ``_sending`` stays True: theirs now
        else:
            self._sending = False

    def _may_send(self, event: Event | None) -> bool:
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
        if self._done:
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
        self._done = True
        self._notify()

    def _new_keepalive(self) -> Keepalive | None:
        interval = self.options.ping_interval
        if not interval:
            return None
        timeout = self.options.ping_timeout or interval
        return Keepalive(interval, timeout, anyio.current_time())


def _message_data(data: object) -> str | bytes:
    """What :meth:`WebSocket.send` accepts, as ``str`` or ``bytes``."""
    if isinstance(data, str):
        return str(data)
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"send() takes str or bytes, not {type(data).__name__}")


def _unwrap(stream: ByteStream) -> ByteStream:
    """The stream under an empty :class:`BufferedStream`: one layer less per frame."""
    if type(stream) is BufferedStream and not stream.buffer:
        return stream.stream
    return stream
