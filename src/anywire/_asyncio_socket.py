"""The socket stream of the connections our servers accept, on asyncio.

Measured need for ``import asyncio`` in src/ (DESIGN.md): anyio's asyncio
``SocketStream`` resumes reading before every ``receive()`` and pauses it after
(two ``epoll_ctl`` system calls per read), and ends every ``send()`` with a
scheduler turn inside a new shielded cancel scope. Profiled with py-spy under the
Engine.IO load test (500 WebSocket sessions, one message in flight each, anyio
4.16, Python 3.11), those took 28% of the server's CPU.

This stream keeps the transport reading while less than ``read_limit`` bytes wait
in its buffer (it pauses reading above that, so the buffer stays bounded), and
``send()`` returns as soon as the bytes are handed to the transport while the
transport's own buffer is below ``write_limit`` (above it, ``send()`` waits until the
kernel took enough). Neither yields to the scheduler when it need not wait, so
neither is a cancellation point then; every caller in anywire waits elsewhere
(for the next bytes, the next message) and is cancelled there. A receiver cannot
hog the loop for more than what is buffered (bytes arrive only while the loop
runs), and a sender whose peer takes everything yields once per 256 KiB. Closing lets
what is still buffered go out within ``close_flush_timeout`` seconds, then aborts.

On trio, ``anywire._raw_socket`` has the trio-side reasons for its own stream.
"""

from __future__ import annotations

import asyncio  # measured need: see the module docstring
import contextlib
import socket
from collections import deque
from collections.abc import Callable

import anyio
import anyio.lowlevel
from anyio.abc import SocketStream

__all__ = ["AsyncioSocketStream", "loop_time", "running_on_asyncio", "wrap_accepted"]

_READ_LIMIT = 256 * 1024
_WRITE_LIMIT = 64 * 1024
_CLOSE_FLUSH_TIMEOUT = 2.0
#: send() yields to the scheduler at least once per this many bytes sent.
_YIELD_EVERY = 256 * 1024


def running_on_asyncio() -> bool:
    """True inside a task of a running asyncio event loop (not under trio)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def loop_time() -> Callable[[], float] | None:
    """The running asyncio loop's ``time`` (anyio.current_time), or None under trio."""
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:
        return None


async def wrap_accepted(sock: socket.socket) -> AsyncioSocketStream:
    """An :class:`AsyncioSocketStream` that owns ``sock``, a connected stream socket."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_accepted_socket(_Protocol, sock)
    return AsyncioSocketStream(transport, protocol, loop)


class _Protocol(asyncio.Protocol):
    """Buffers what arrives (bounded by pausing the transport) and wakes the stream."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.reading_paused = False
        self.eof = False
        self.lost = False
        self.exception: Exception | None = None
        self.read_waiter: asyncio.Future[None] | None = None
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_WRITE_LIMIT)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered >= _READ_LIMIT and not self.reading_paused:
            assert self.transport is not None
            self.transport.pause_reading()
            self.reading_paused = True
        self.wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self.wake_reader()
        return True  # keep the transport open for writing (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None:
            self.exception = exc
        self.wake_reader()
        self.wake_writer()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.wake_writer()

    def wake_reader(self) -> None:
        waiter = self.read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wake_writer(self) -> None:
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class AsyncioSocketStream(SocketStream):
    """anyio's ``SocketStream`` interface over an asyncio transport (module docstring)."""

    def __init__(
        self, transport: asyncio.Transport, protocol: _Protocol, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._loop = loop
        self._closed = False
        self._receive_guard = anyio.ResourceGuard("reading from")
        self._send_guard = anyio.ResourceGuard("writing to")
        self._unyielded = 0

    @property
    def _raw_socket(self) -> socket.socket:
        sock: socket.socket = self._transport.get_extra_info("socket")
        return sock

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        with self._receive_guard:
            protocol = self._protocol
            while not protocol.chunks:
                if self._closed:
                    raise anyio.ClosedResourceError
                if protocol.exception is not None:
                    raise anyio.BrokenResourceError from protocol.exception
                if protocol.eof or protocol.lost:
                    raise anyio.EndOfStream
                protocol.read_waiter = self._loop.create_future()
                try:
                    await protocol.read_waiter
                finally:
                    protocol.read_waiter = None
            if self._closed:
                raise anyio.ClosedResourceError
            chunk = protocol.chunks.popleft()
            if len(chunk) > max_bytes:
                chunk, rest = chunk[:max_bytes], chunk[max_bytes:]
                protocol.chunks.appendleft(rest)
            protocol.buffered -= len(chunk)
            if protocol.reading_paused and protocol.buffered < _READ_LIMIT // 2:
                protocol.reading_paused = False
                self._transport.resume_reading()
            return chunk

    async def send(self, item: bytes) -> None:
        with self._send_guard:
            if self._protocol.write_paused:
                await self._drain()
            self._check_writable()
            try:
                self._transport.write(item)
            except RuntimeError as exc:  # write() after write_eof()
                if self._transport.is_closing():
                    raise anyio.BrokenResourceError from exc
                raise
            if self._protocol.write_paused:
                self._unyielded = 0
                await self._drain()
            else:
                # A sender whose peer takes everything must still let others run.
                self._unyielded += len(item)
                if self._unyielded >= _YIELD_EVERY:
                    self._unyielded = 0
                    await anyio.lowlevel.checkpoint()

    def _check_writable(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        protocol = self._protocol
        if protocol.exception is not None:
            raise anyio.BrokenResourceError from protocol.exception
        if protocol.lost or self._transport.is_closing():
            raise anyio.BrokenResourceError  # asyncio would drop the bytes silently

    async def _drain(self) -> None:
        protocol = self._protocol
        while protocol.write_paused and not protocol.lost and not self._closed:
            protocol.drain_waiter = self._loop.create_future()
            try:
                await protocol.drain_waiter
            finally:
                protocol.drain_waiter = None
        self._check_writable()

    async def send_eof(self) -> None:
        with contextlib.suppress(OSError):
            self._transport.write_eof()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            transport = self._transport
            if transport.get_write_buffer_size():
                transport.close()  # sends what is buffered, then closes
                self._loop.call_later(_CLOSE_FLUSH_TIMEOUT, transport.abort)
            else:
                transport.abort()
            self._protocol.wake_reader()
            self._protocol.wake_writer()
        await anyio.lowlevel.checkpoint()
