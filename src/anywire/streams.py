"""Buffered byte streams and TCP connections on anyio.

:class:`BufferedStream` wraps any :class:`anyio.abc.ByteStream` and adds the
reads that protocols need (``read_exactly``, ``read_until``) with a bounded
buffer. :func:`open_tcp_stream` connects (optionally with TLS) and returns one;
:func:`serve_tcp` accepts connections and hands each one, as a
:class:`BufferedStream`, to a handler in a task the server owns, with graceful
shutdown on cancellation.

The names of the ``aio`` seed library are kept: ``net`` and ``stream`` in this
package re-export them (see ``docs/migration-aio.md``).
"""

from __future__ import annotations

import errno
import logging
import math
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
from anyio import TypedAttributeProvider
from anyio.abc import (
    ByteStream,
    SocketAttribute,
    SocketListener,
    SocketStream,
    TaskGroup,
    TaskStatus,
)
from anyio.streams.tls import TLSStream

from anywire import _asyncio_socket
from anywire._raw_socket import RawSocketStream
from anywire.errors import ConcurrencyError, DelimiterNotFound, LimitExceeded

__all__ = [
    "BufferedStream",
    "TCPHandler",
    "TCPServerInfo",
    "get_socket_peer_address",
    "open_tcp_stream",
    "serve_listeners",
    "serve_tcp",
    "start_tcp_server",
]

_LOGGER = logging.getLogger(__name__)

#: Largest ``read_exactly`` size or ``read_until`` limit a stream accepts by default.
_DEFAULT_MAX_BUFFER_SIZE = 16 * 1024 * 1024
_DEFAULT_READ_SIZE = 65536
#: Every close we run during cleanup gets this long (TLS close_notify included).
_CLOSE_TIMEOUT = 2.0
_TLS_HANDSHAKE_TIMEOUT = 10.0
_ACCEPT_RETRY_DELAY = 0.1
#: accept() failures that mean "out of resources for now": log, wait, retry.
_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
#: accept() failures that concern one dropped connection only: retry at once.
_ACCEPT_TRANSIENT_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO})
#: After an accept() wakes, accept up to this many more waiting connections at once.
#: One accept per scheduler turn starves new connections (a polling client opens one
#: per request) when thousands of busy connections share the turn; asyncio's own
#: server accepts up to its backlog (100) per readiness event.
_ACCEPT_BURST = 100
#: "max_connections reached" is logged at most once per this many seconds.
_FULL_LOG_INTERVAL = 10.0

#: What :func:`serve_tcp` calls for each connection.
TCPHandler = Callable[["BufferedStream"], Awaitable[object]]


class _Guard:
    """Raise :class:`ConcurrencyError` when a second task enters a one-task operation."""

    __slots__ = ("_action", "_busy")

    def __init__(self, action: str) -> None:
        self._action = action
        self._busy = False

    def __enter__(self) -> None:
        if self._busy:
            raise ConcurrencyError(f"another task is already {self._action} this stream")
        self._busy = True

    def __exit__(self, *exc_info: object) -> None:
        self._busy = False


class BufferedStream(ByteStream):
    """A byte stream with a bounded read buffer over any anyio byte stream.

    It is itself an :class:`anyio.abc.ByteStream`. Reads that need more than
    one chunk (``read_exactly``, ``read_until``) keep what they have received
    in the buffer, so a cancelled or failed read loses nothing. The buffer never
    holds more than the larger of the current request and what an earlier
    request left over: ``read_until`` asks the wrapped stream for at most
    ``max_bytes`` bytes in all, ``read_exactly`` for at most ``size``.
    Requests above ``max_buffer_size`` (16 MiB by default) raise
    :class:`~anywire.errors.LimitExceeded` before anything is read.

    One task may read and one task may write at a time; a second concurrent
    reader (or writer) gets :class:`~anywire.errors.ConcurrencyError`.
    """

    def __init__(
        self, stream: ByteStream, *, max_buffer_size: int = _DEFAULT_MAX_BUFFER_SIZE
    ) -> None:
        if max_buffer_size < 1:
            raise ValueError("max_buffer_size must be a positive integer")
        self._stream = stream
        self._max_buffer_size = max_buffer_size
        self._buffer = bytearray()
        self._eof = False
        self._closed = False
        self._reading = _Guard("reading from")
        self._writing = _Guard("writing to")

    def __repr__(self) -> str:
        state = "closed" if self._closed else "eof" if self._eof else "open"
        return (
            f"<{type(self).__name__} {state} buffered={len(self._buffer)}"
            f" stream={type(self._stream).__name__}>"
        )

    @property
    def stream(self) -> ByteStream:
        """The wrapped stream."""
        return self._stream

    @property
    def buffer(self) -> bytes:
        """The bytes received from the wrapped stream and not read yet."""
        return bytes(self._buffer)

    @property
    def max_buffer_size(self) -> int:
        """The largest ``read_exactly`` size or ``read_until`` limit accepted."""
        return self._max_buffer_size

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._stream.extra_attributes

    async def receive(self, max_bytes: int = _DEFAULT_READ_SIZE) -> bytes:
        """Return 1 to ``max_bytes`` bytes; raise :class:`anyio.EndOfStream` at EOF."""
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        with self._reading:
            self._check_open()
            if self._buffer:
                return self._take(max_bytes)
            return await self._receive_raw(max_bytes)

    async def read(self, max_bytes: int = _DEFAULT_READ_SIZE) -> bytes:
        """Return 1 to ``max_bytes`` bytes, or ``b""`` at end of stream."""
        try:
            return await self.receive(max_bytes)
        except anyio.EndOfStream:
            return b""

    async def read_exactly(self, size: int) -> bytes:
        """Return exactly ``size`` bytes.

        :raises anyio.IncompleteRead: the stream ended first (what arrived stays buffered)
        :raises ~anywire.errors.LimitExceeded: ``size`` is above ``max_buffer_size``
        """
        self._check_request(size, "size")
        with self._reading:
            self._check_open()
            while len(self._buffer) < size:
                await self._fill(size - len(self._buffer))
            return self._take(size)

    async def read_until(self, delimiter: bytes, max_bytes: int = _DEFAULT_READ_SIZE) -> bytes:
        """Return the bytes up to and including the first ``delimiter``.

        The result, delimiter included, is at most ``max_bytes`` long.

        :raises ~anywire.errors.DelimiterNotFound: the first ``max_bytes`` bytes hold no
            delimiter; they stay buffered and the stream stays usable
        :raises anyio.IncompleteRead: the stream ended first (what arrived stays buffered)
        """
        if not delimiter or max_bytes < 1:
            raise ValueError("delimiter must not be empty and max_bytes must be positive")
        self._check_request(max_bytes, "max_bytes")
        with self._reading:
            self._check_open()
            start = 0
            while (index := self._buffer.find(delimiter, start, max_bytes)) < 0:
                if len(self._buffer) >= max_bytes:
                    raise DelimiterNotFound(
                        f"no {delimiter!r} in the first {max_bytes} bytes", limit=max_bytes
                    )
                start = max(0, len(self._buffer) - len(delimiter) + 1)
                await self._fill(max_bytes - len(self._buffer))
            return self._take(index + len(delimiter))

    async def send(self, item: bytes) -> None:
        """Send all of ``item``."""
        with self._writing:
            self._check_open()
            if item:
                await self._stream.send(item)

    async def write(self, data: bytes) -> None:
        """Send all of ``data`` (the seed's name; same as :meth:`write_all`)."""
        await self.send(data)

    async def write_all(self, data: bytes) -> None:
        """Send all of ``data``."""
        await self.send(data)

    async def send_eof(self) -> None:
        """Half-close: tell the peer we will send no more (reading goes on).

        Raises :class:`NotImplementedError` when the wrapped stream cannot
        half-close (TLS streams, for one).
        """
        with self._writing:
            self._check_open()
            await self._stream.send_eof()

    async def aclose(self) -> None:
        """Close the wrapped stream and drop the buffer. Calling it again is harmless."""
        self._closed = True
        self._buffer.clear()
        await self._stream.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError

    def _check_request(self, size: int, name: str) -> None:
        if size < 0:
            raise ValueError(f"{name} must not be negative")
        if size > self._max_buffer_size:
            raise LimitExceeded(
                f"{name}={size} is above max_buffer_size={self._max_buffer_size}",
                limit=self._max_buffer_size,
            )

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def _receive_raw(self, max_bytes: int) -> bytes:
        if self._eof:
            raise anyio.EndOfStream
        try:
            data = await self._stream.receive(max_bytes)
        except anyio.EndOfStream:
            self._eof = True
            raise
        if not data:  # not allowed by the ByteStream contract; treat it as EOF
            self._eof = True
            raise anyio.EndOfStream
        return data

    async def _fill(self, max_bytes: int) -> None:
        try:
            self._buffer += await self._receive_raw(max_bytes)
        except anyio.EndOfStream as exc:
            raise anyio.IncompleteRead from exc


async def open_tcp_stream(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    tls_standard_compatible: bool = True,
    timeout: float | None = None,
    local_host: str | None = None,
    max_buffer_size: int = _DEFAULT_MAX_BUFFER_SIZE,
) -> BufferedStream:
    """Connect to ``host:port`` and return the connection as a :class:`BufferedStream`.

    With ``ssl_context`` the connection is wrapped in TLS (server name ``host``).
    ``timeout`` bounds the connect and the TLS handshake together.

    :raises TimeoutError: ``timeout`` ran out
    :raises OSError: the connection failed (``ssl.SSLError`` for TLS failures)
    """
    with anyio.fail_after(timeout):
        stream: ByteStream = await anyio.connect_tcp(host, port, local_host=local_host)
        if ssl_context is not None:
            stream = await _wrap_tls(
                stream, ssl_context, hostname=host, standard_compatible=tls_standard_compatible
            )
    return BufferedStream(stream, max_buffer_size=max_buffer_size)


async def _wrap_tls(
    stream: ByteStream,
    ssl_context: ssl.SSLContext,
    *,
    hostname: str | None,
    standard_compatible: bool,
) -> TLSStream:
    """Run the TLS handshake over ``stream``; close ``stream`` if it fails."""
    try:
        return await TLSStream.wrap(
            stream,
            server_side=hostname is None,
            hostname=hostname,
            ssl_context=ssl_context,
            standard_compatible=standard_compatible,
        )
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise


@dataclass(frozen=True)
class TCPServerInfo:
    """What :func:`serve_tcp` reports to ``task_status.started()``."""

    #: Every bound ``(host, port)``: one per listening socket.
    addresses: tuple[tuple[str, int], ...]

    @property
    def port(self) -> int:
        """The port of the first bound address (useful with ``port=0``)."""
        return self.addresses[0][1]


async def serve_tcp(
    handler: TCPHandler,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    graceful_shutdown: float | None = None,
    backlog: int = 128,
    ssl_context: ssl.SSLContext | None = None,
    tls_standard_compatible: bool = True,
    tls_handshake_timeout: float = _TLS_HANDSHAKE_TIMEOUT,
    max_connections: int | None = None,
    max_buffer_size: int = _DEFAULT_MAX_BUFFER_SIZE,
    logger: logging.Logger | None = None,
    task_status: TaskStatus[TCPServerInfo] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Accept TCP connections and run ``await handler(stream)`` for each, until cancelled.

    ``host=None`` listens on every interface. Use ``info = await
    tg.start(serve_tcp, handler)`` to learn the bound addresses
    (:class:`TCPServerInfo`). Each connection runs in its own task; its stream
    is closed when the handler returns. A handler that raises is logged (with
    the traceback) and ends only its own connection.

    When cancelled, the server stops accepting at once and gives running
    handlers ``graceful_shutdown`` seconds to finish before cancelling them
    (``None``: cancel them at once; ``math.inf``: wait for them). With
    ``max_connections``, accepting waits while that many connections are open.
    """
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port, backlog=backlog)
    await serve_listeners(
        handler,
        # create_tcp_listener() builds SocketListeners; its type says Listener[SocketStream]
        cast("list[SocketListener]", listener.listeners),
        graceful_shutdown=graceful_shutdown,
        ssl_context=ssl_context,
        tls_standard_compatible=tls_standard_compatible,
        tls_handshake_timeout=tls_handshake_timeout,
        max_connections=max_connections,
        max_buffer_size=max_buffer_size,
        logger=logger,
        task_status=task_status,
    )


async def serve_listeners(
    handler: TCPHandler,
    listeners: Sequence[SocketListener],
    *,
    graceful_shutdown: float | None = None,
    ssl_context: ssl.SSLContext | None = None,
    tls_standard_compatible: bool = True,
    tls_handshake_timeout: float = _TLS_HANDSHAKE_TIMEOUT,
    max_connections: int | None = None,
    max_buffer_size: int = _DEFAULT_MAX_BUFFER_SIZE,
    logger: logging.Logger | None = None,
    task_status: TaskStatus[TCPServerInfo] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """:func:`serve_tcp` over listeners the caller opened, until cancelled.

    For several addresses, IPv6 and Unix sockets (``anyio.create_unix_listener``):
    every listener feeds the same handler, connection limit and graceful
    shutdown. The listeners are closed when this returns. The reported
    :class:`TCPServerInfo` lists the IP addresses only (Unix sockets have none).
    """
    limiter = anyio.CapacityLimiter(max_connections) if max_connections else None
    server = _TCPServer(
        handler,
        graceful_shutdown,
        ssl_context,
        tls_standard_compatible,
        tls_handshake_timeout,
        limiter,
        max_buffer_size,
        logger or _LOGGER,
    )
    try:
        await server.run(listeners, task_status)
    finally:
        for listener in listeners:
            await anyio.aclose_forcefully(listener)


async def start_tcp_server(
    host: str | None,
    port: int,
    handler: TCPHandler,
    *,
    graceful_shutdown: float | None = None,
    backlog: int = 128,
    ssl_context: ssl.SSLContext | None = None,
    tls_standard_compatible: bool = True,
    tls_handshake_timeout: float = _TLS_HANDSHAKE_TIMEOUT,
    max_connections: int | None = None,
    max_buffer_size: int = _DEFAULT_MAX_BUFFER_SIZE,
    logger: logging.Logger | None = None,
    task_status: TaskStatus[TCPServerInfo] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """:func:`serve_tcp` with the ``aio`` seed's argument order: run until cancelled."""
    await serve_tcp(
        handler,
        host,
        port,
        graceful_shutdown=graceful_shutdown,
        backlog=backlog,
        ssl_context=ssl_context,
        tls_standard_compatible=tls_standard_compatible,
        tls_handshake_timeout=tls_handshake_timeout,
        max_connections=max_connections,
        max_buffer_size=max_buffer_size,
        logger=logger,
        task_status=task_status,
    )


@dataclass(eq=False)
class _TCPServer:
    """The state of one :func:`serve_tcp` call: its settings and handler scopes.

    Each connection task runs in a shielded cancel scope, so cancelling the
    server does not reach the handlers; shutdown then sets every such scope's
    deadline to the end of the grace period.
    """

    handler: TCPHandler
    grace: float | None
    ssl_context: ssl.SSLContext | None
    tls_standard_compatible: bool
    tls_handshake_timeout: float
    limiter: anyio.CapacityLimiter | None
    max_buffer_size: int
    logger: logging.Logger
    _deadline: float = field(default=math.inf, init=False)
    _scopes: set[anyio.CancelScope] = field(default_factory=set, init=False)
    _full_logged_at: float = field(default=-math.inf, init=False)

    async def run(
        self, listeners: Sequence[SocketListener], task_status: TaskStatus[TCPServerInfo]
    ) -> None:
        info = TCPServerInfo(_ip_addresses(listeners))
        async with anyio.create_task_group() as tg:
            for listener in listeners:
                tg.start_soon(self._accept_loop, listener, tg)
            task_status.started(info)
            try:
                await anyio.sleep_forever()
            finally:
                self._begin_shutdown()

    def _begin_shutdown(self) -> None:
        now = anyio.current_time()
        self._deadline = -math.inf if self.grace is None else now + self.grace
        for scope in list(self._scopes):
            scope.deadline = self._deadline

    async def _accept_loop(self, listener: SocketListener, tg: TaskGroup) -> None:
        async with listener:  # leaving the loop (cancelled) closes the listening socket
            raw = listener.extra(SocketAttribute.raw_socket)
            raw.setblocking(False)  # the bursts below must never block
            while True:
                token = object()
                if self.limiter is not None:
                    self._log_if_full(self.limiter)
                    await self.limiter.acquire_on_behalf_of(token)
                try:
                    sock = await self._accept(raw)
                except BaseException:
                    self._release(token)
                    raise
                tg.start_soon(self._connection, sock, token)
                self._accept_waiting(raw, tg)

    def _accept_waiting(self, raw: socket.socket, tg: TaskGroup) -> None:
        """Accept, without waiting, up to ``_ACCEPT_BURST`` connections already queued.

        Each accepted socket becomes a stream in its own connection task, so a burst
        costs this task no scheduler turns. Any failure here ends the burst; the
        next awaited accept reports it.
        """
        for _ in range(_ACCEPT_BURST):
            token = object()
            if self.limiter is not None:
                try:
                    self.limiter.acquire_on_behalf_of_nowait(token)
                except anyio.WouldBlock:
                    return
            try:
                sock, _address = raw.accept()
            except OSError:  # BlockingIOError: nothing waiting
                self._release(token)
                return
            tg.start_soon(self._connection, sock, token)

    def _log_if_full(self, limiter: anyio.CapacityLimiter) -> None:
        """Say (at most every ``_FULL_LOG_INTERVAL`` s) that accepting waits for a free slot."""
        now = anyio.current_time()
        if limiter.available_tokens >= 1 or now - self._full_logged_at < _FULL_LOG_INTERVAL:
            return
        self._full_logged_at = now
        self.logger.warning(
            "max_connections (%d) reached: new connections wait until one closes",
            limiter.total_tokens,
        )

    async def _accept(self, raw: socket.socket) -> socket.socket:
        """Wait for a connection on the listening socket ``raw`` and accept it."""
        while True:
            await anyio.wait_readable(raw)  # a scheduler turn per burst, even when busy
            try:
                sock, _address = raw.accept()
            except BlockingIOError:
                continue  # another process took it, or a spurious wake-up
            except OSError as exc:
                if exc.errno in _ACCEPT_TRANSIENT_ERRNOS:
                    continue
                if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                self.logger.exception("accept() failed, retrying")
                await anyio.sleep(_ACCEPT_RETRY_DELAY)
            else:
                return sock

    def _release(self, token: object) -> None:
        if self.limiter is not None:
            self.limiter.release_on_behalf_of(token)

    async def _connection(self, accepted: socket.socket, token: object) -> None:
        with anyio.CancelScope(shield=True, deadline=self._deadline) as scope:
            self._scopes.add(scope)
            try:
                raw = await _as_stream(accepted)
            except BaseException as exc:
                self._scopes.discard(scope)
                self._release(token)
                accepted.close()
                if not isinstance(exc, OSError):  # reset before it could be wrapped
                    raise
                self.logger.debug("accepted connection lost before it started: %r", exc)
                return
            stream: ByteStream = raw
            peer = _peer(raw)
            try:
                secured = await self._secure(raw, peer)
                if secured is not None:
                    stream = BufferedStream(secured, max_buffer_size=self.max_buffer_size)
                    await self._call_handler(stream, peer)
            finally:
                self._scopes.discard(scope)
                self._release(token)
                await _aclose_quietly(stream, peer, self.logger)

    async def _secure(self, raw: SocketStream, peer: str) -> ByteStream | None:
        """Return the stream the handler gets, or ``None`` if the TLS handshake failed."""
        if self.ssl_context is None:
            return raw
        try:
            with anyio.fail_after(self.tls_handshake_timeout):
                return await _wrap_tls(
                    raw,
                    self.ssl_context,
                    hostname=None,
                    standard_compatible=self.tls_standard_compatible,
                )
        except (OSError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            self.logger.debug("TLS handshake with %s failed: %r", peer, exc)
            return None

    async def _call_handler(self, stream: BufferedStream, peer: str) -> None:
        try:
            await self.handler(stream)
        except Exception:
            self.logger.exception(
                "TCP handler %s raised; closing the connection with %s",
                getattr(self.handler, "__qualname__", self.handler),
                peer,
            )


async def _as_stream(sock: socket.socket) -> SocketStream:
    """The stream of a connection we accepted: ours (one per backend, see their modules)."""
    if sock.family != socket.AF_UNIX:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if _asyncio_socket.running_on_asyncio():
        return await _asyncio_socket.wrap_accepted(sock)
    return RawSocketStream(sock)


async def _aclose_quietly(stream: ByteStream, peer: str, logger: logging.Logger) -> None:
    """Close ``stream`` even when cancelled, within ``_CLOSE_TIMEOUT``; never raise."""
    with anyio.CancelScope(shield=True, deadline=anyio.current_time() + _CLOSE_TIMEOUT) as scope:
        try:
            await stream.aclose()
        except Exception as exc:
            logger.debug("closing the connection with %s failed: %r", peer, exc)
    if scope.cancelled_caught:
        await anyio.aclose_forcefully(stream)


def _ip_addresses(listeners: Sequence[SocketListener]) -> tuple[tuple[str, int], ...]:
    """The ``(host, port)`` of every IP listener (Unix socket listeners have no such address)."""
    addresses = (listener.extra(SocketAttribute.local_address) for listener in listeners)
    return tuple(_ip_address(address) for address in addresses if isinstance(address, tuple))


def _peer(stream: TypedAttributeProvider) -> str:
    """``host:port`` of the peer, for log messages; never raises."""
    try:
        host, port = _ip_address(stream.extra(SocketAttribute.remote_address))
    except (OSError, ValueError, anyio.TypedAttributeLookupError):
        return "an unknown peer"
    return f"{host}:{port}"


def _ip_address(address: object) -> tuple[str, int]:
    if isinstance(address, tuple):
        return str(address[0]), int(address[1])
    raise ValueError(f"not an IP socket address: {address!r}")


def get_socket_peer_address(
    stream_or_socket: TypedAttributeProvider | socket.socket,
) -> tuple[str, int]:
    """Return the peer's ``(host, port)`` of a connected socket or anyio socket stream.

    Works for :class:`BufferedStream`, anyio socket and TLS streams (through
    :attr:`anyio.abc.SocketAttribute.remote_address`), a plain
    :class:`socket.socket` and any socket-like object with ``getpeername()``
    (such as the ``SocketAttribute.raw_socket`` of an asyncio stream).

    :raises ValueError: not an IPv4 or IPv6 socket
    :raises anyio.TypedAttributeLookupError: the stream is not over a socket
    """
    if isinstance(stream_or_socket, TypedAttributeProvider):
        return _ip_address(stream_or_socket.extra(SocketAttribute.remote_address))
    return _ip_address(stream_or_socket.getpeername())
