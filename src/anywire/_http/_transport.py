"""The byte-moving half of the server connection: reads, writes, closing.

This is the one seam where anyio's stream exceptions are looked at:

- a read that hits ``EndOfStream`` or ``BrokenResourceError`` returns ``b""``
  (end of input, which h11 understands) and records that the peer is gone;
- a write that fails or is cancelled midway closes the stream at once, so no
  half-written response is ever followed by another one; the error (or the
  cancellation) propagates unchanged;
- once the stream is closed, reads and writes raise ``ClosedResourceError``
  if we closed it and ``BrokenResourceError`` if the peer (or an interrupted
  write) broke it, keeping anyio's meanings.
"""

from __future__ import annotations

import anyio
from anyio.abc import ByteStream

__all__ = ["Transport"]


class Transport:
    """A :class:`~anyio.abc.ByteStream` with deadlines, one write path and a lingering close."""

    def __init__(self, stream: ByteStream, *, receive_bytes: int, linger: float) -> None:
        self.stream = stream
        self._receive_bytes = receive_bytes
        self._linger = linger
        #: True once the stream is closed (by us, for whatever reason).
        self.closed = False
        #: True once the peer ended its side (EOF, even a half-close) or reset the connection.
        self.peer_gone = False
        #: True once a write of ours was interrupted (cancelled or failed) midway.
        self.interrupted = False

    def check_open(self) -> None:
        """Raise anyio's error for a closed stream: Broken if it broke, Closed if we closed it."""
        if self.closed:
            if self.peer_gone or self.interrupted:
                raise anyio.BrokenResourceError("the connection is broken")
            raise anyio.ClosedResourceError("the connection is closed")

    async def receive(self) -> bytes:
        """Read some bytes; ``b""`` at end of input (EOF or reset)."""
        self.check_open()
        try:
            return await self.stream.receive(self._receive_bytes)
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            self.peer_gone = True
            return b""

    async def receive_before(self, deadline: float) -> bytes | None:
        """Like :meth:`receive`, but ``None`` when ``deadline`` passes first."""
        with anyio.CancelScope(deadline=deadline):
            return await self.receive()
        return None

    async def send(self, data: bytes) -> None:
        """Write ``data`` whole, or close the stream and re-raise."""
        self.check_open()
        if not data:
            return
        try:
            await self.stream.send(data)
        except anyio.BrokenResourceError:
            self.peer_gone = True
            await self.abort()
            raise
        except BaseException:
            self.interrupted = True
            await self.abort()
            raise

    async def abort(self) -> None:
        """Close the stream now, without waiting for anything (idempotent)."""
        self.closed = True
        await anyio.aclose_forcefully(self.stream)

    async def aclose(self) -> None:
        """Close the stream at once, politely if the stream can do it fast (idempotent)."""
        if self.closed:
            return
        self.closed = True
        with anyio.CancelScope(shield=True, deadline=anyio.current_time() + self._linger):
            await self.stream.aclose()

    async def close_gracefully(self) -> None:
        """Send end-of-stream, read what the peer still sends for a while, then close.

        Closing a TCP socket with unread input makes the kernel send a reset,
        which can destroy the response the client has not read yet; lingering
        (bounded by ``linger`` seconds; what comes is dropped) avoids that.
        """
        if self.closed:
            return
        try:
            with anyio.move_on_after(self._linger):
                await self.stream.send_eof()
                await self._discard_input()
        except NotImplementedError:
            pass  # no half-close on this stream (TLS): close without lingering
        except anyio.BrokenResourceError:
            self.peer_gone = True
        finally:
            await self.aclose()

    async def _discard_input(self) -> None:
        while True:
            try:
                await self.stream.receive(self._receive_bytes)
            except anyio.EndOfStream:
                return
