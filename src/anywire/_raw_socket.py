"""The socket stream of the connections our servers accept, on trio.

anyio's trio ``SocketStream`` goes through trio's socket wrapper, which ends every
successful ``recv`` and ``send`` with a scheduler turn (trio's "schedule point"):
a ``receive()`` that had to wait costs two turns, a ``send()`` one. Profiled with
py-spy under the Engine.IO polling benchmark (100 clients x 10 messages in flight,
anyio 4.16, trio 0.35, Python 3.11), those turns and the wrapper took about a fifth of
the server's CPU.

This stream calls the non-blocking socket directly and waits (``anyio.wait_readable``
/ ``wait_writable``) only when the kernel has nothing to give or no room to take.
Neither ``receive()`` nor ``send()`` yields to the scheduler when it need not wait, so
neither is a cancellation point then, as with the asyncio stream
(``anywire._asyncio_socket``); every caller in anywire waits elsewhere and is
cancelled there. A reader of a peer that sends without pause, or a writer whose peer
takes everything, yields once per 256 KiB so that other tasks run.

The kernel's socket buffers bound what is held; ``aclose()`` closes the socket at once
and the kernel still sends what it holds (as anyio's stream does).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import SocketStream

__all__ = ["RawSocketStream"]

#: receive() and send() each yield to the scheduler at least once per this many bytes.
_YIELD_EVERY = 256 * 1024


class RawSocketStream(SocketStream):
    """anyio's ``SocketStream`` interface over a non-blocking stream socket (module docstring)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        backend = anyio.lowlevel.current_token().backend_class
        self._wait_readable = backend.wait_readable
        self._wait_writable = backend.wait_writable
        self._closed = False
        self._receive_guard = anyio.ResourceGuard("reading from")
        self._send_guard = anyio.ResourceGuard("writing to")
        self._received = 0
        self._sent = 0

    @property
    def _raw_socket(self) -> socket.socket:
        return self._sock

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        with self._receive_guard:
            data: bytes = await self._attempt(self._sock.recv, max_bytes, self._wait_readable)
            if not data:
                raise anyio.EndOfStream
            self._received += len(data)
            if self._received >= _YIELD_EVERY:  # a peer that never pauses: let others run
                self._received = 0
                await anyio.lowlevel.checkpoint()
            return data

    async def send(self, item: bytes) -> None:
        with self._send_guard:
            view = memoryview(item)
            while view:
                sent: int = await self._attempt(self._sock.send, view, self._wait_writable)
                view = view[sent:]
                self._sent += sent
            if self._sent >= _YIELD_EVERY:  # a peer that takes everything: let others run
                self._sent = 0
                await anyio.lowlevel.checkpoint()

    async def _attempt(
        self,
        call: Callable[[Any], Any],
        arg: object,
        wait: Callable[[socket.socket], Awaitable[None]],
    ) -> Any:
        """``call(arg)`` on the socket, waiting (``wait``) only while it would block."""
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                return call(arg)
            except BlockingIOError:
                await wait(self._sock)
            except OSError as exc:
                if self._closed:
                    raise anyio.ClosedResourceError from None
                raise anyio.BrokenResourceError from exc

    async def send_eof(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self._sock.fileno() >= 0:
                anyio.notify_closing(self._sock)  # wakes a task waiting on it
                self._sock.close()
        await anyio.lowlevel.checkpoint()
