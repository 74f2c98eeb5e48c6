"""Running a server: :func:`serve_app` in the caller's task group, :func:`serve` blocking.

Order of events: lifespan startup; listen on every address; report the
addresses (``task_status.started``); serve until cancelled; then shut down
gracefully (stop accepting, close idle connections at once, let requests in
flight finish within ``graceful_shutdown`` seconds, close WebSockets with
1001, cancel what is left); lifespan shutdown; return.
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import stat
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Unpack

import anyio
from anyio.abc import SocketListener, TaskStatus

from anywire._tasks import owned_task_group
from anywire.streams import serve_listeners

from ._config import ASGIApp, ServerConfig, ServerOptions, TCPBind, UnixBind
from ._connection import serve_connection
from ._lifespan import Lifespan, LifespanError
from ._shared import Runner

__all__ = ["Server", "ServerInfo", "serve", "serve_app"]


@dataclass(frozen=True)
class ServerInfo:
    """Where a server listens: what ``await tg.start(serve_app, app)`` returns."""

    #: Every bound ``(host, port)``, in the order of the listen addresses.
    addresses: tuple[tuple[str, int], ...]
    #: Every Unix socket path.
    unix_paths: tuple[str, ...] = ()
    #: Whether connections use TLS.
    tls: bool = False

    @property
    def port(self) -> int:
        """The port of the first bound address (useful with ``port=0``)."""
        if not self.addresses:
            raise LookupError("the server listens on Unix sockets only: no port")
        return self.addresses[0][1]

    @property
    def urls(self) -> tuple[str, ...]:
        """``http://host:port`` (``https``) per address, ``unix:path`` per Unix socket."""
        scheme = "https" if self.tls else "http"
        urls = [
            f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
            for host, port in self.addresses
        ]
        return (*urls, *(f"unix:{path}" for path in self.unix_paths))


class Server:
    """One server for ``app``: ``await tg.start(server.run)``; ``force_exit()`` stops at once."""

    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app = app
        self.config = config
        self.lifespan_shutdown_failed = False
        self._runner = Runner(app, config)
        self._forced = False
        self._final: anyio.CancelScope | None = None

    def force_exit(self) -> None:
        """Cancel every connection now, and skip (or cut short) the lifespan shutdown."""
        self._forced = True
        self._runner.force()
        if self._final is not None:
            self._final.cancel()

    async def run(self, *, task_status: TaskStatus[ServerInfo] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled (see the module docstring).

        :raises LifespanError: the application's startup failed
        :raises OSError: an address could not be bound
        """
        config = self.config
        lifespan = Lifespan(self.app, config.lifespan, config.lifespan_timeout, config.log)
        async with owned_task_group() as tg:
            try:
                await lifespan.startup(tg)
                self._runner.state = lifespan.state
                await self._serve(lifespan, task_status)
            finally:
                lifespan.stop()

    async def _serve(self, lifespan: Lifespan, task_status: TaskStatus[ServerInfo]) -> None:
        try:
            await self._listen(task_status)
        finally:
            with anyio.CancelScope(shield=True) as self._final:
                if self._forced:
                    self._final.cancel()
                await lifespan.shutdown()
            self.lifespan_shutdown_failed = lifespan.shutdown_failed

    async def _listen(self, task_status: TaskStatus[ServerInfo]) -> None:
        config = self.config
        ssl_context = config.tls()
        listeners = await open_listeners(config)
        async with owned_task_group() as watching:
            watch = self._runner.idle_watch
            if watch is not None:
                watching.start_soon(watch.run)
            try:
                await self._serve_listeners(listeners, ssl_context, task_status)
            finally:
                watching.cancel_scope.cancel()  # every connection is closed by now

    async def _serve_listeners(
        self,
        listeners: list[SocketListener],
        ssl_context: ssl.SSLContext | None,
        task_status: TaskStatus[ServerInfo],
    ) -> None:
        config = self.config
        async with anyio.create_task_group() as tg:
            await tg.start(
                partial(
                    serve_listeners,
                    partial(serve_connection, self._runner),
                    listeners,
                    graceful_shutdown=config.graceful_shutdown,
                    ssl_context=ssl_context,
                    tls_handshake_timeout=config.tls_handshake_timeout,
                    max_connections=config.max_connections,
                    logger=config.log,
                )
            )
            info = _info(listeners, tls=ssl_context is not None)
            for url in info.urls:
                config.log.info("listening on %s", url)
            task_status.started(info)
            try:
                await anyio.sleep_forever()
            finally:
                config.log.info("shutting down")
                self._runner.begin_shutdown()


async def open_listeners(config: ServerConfig) -> list[SocketListener]:
    """One listener per address (two for a host name with IPv4 and IPv6 addresses)."""
    listeners: list[SocketListener] = []
    try:
        for target in config.listen_on():
            listeners.extend(await _open(target, config.backlog))
    except BaseException:
        for listener in listeners:
            await anyio.aclose_forcefully(listener)
        raise
    return listeners


async def _open(target: TCPBind | UnixBind, backlog: int) -> list[SocketListener]:
    if isinstance(target, UnixBind):
        _remove_stale_socket(target.path)
        return [await anyio.create_unix_listener(target.path, backlog=backlog)]
    multi = await anyio.create_tcp_listener(
        local_host=target.host, local_port=target.port, backlog=backlog
    )
    return [listener for listener in multi.listeners if isinstance(listener, SocketListener)]


def _remove_stale_socket(path: str) -> None:
    """Remove a Unix socket file left by an earlier run (never any other kind of file)."""
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def _info(listeners: list[SocketListener], *, tls: bool) -> ServerInfo:
    addresses: list[tuple[str, int]] = []
    paths: list[str] = []
    for listener in listeners:
        address = listener.extra(anyio.abc.SocketAttribute.local_address)
        if isinstance(address, tuple):
            addresses.append((str(address[0]), int(address[1])))
        else:
            paths.append(str(address))
    return ServerInfo(tuple(addresses), tuple(paths), tls)


async def serve_app(
    app: ASGIApp,
    host: str | None = "127.0.0.1",
    port: int = 8000,
    *,
    task_status: TaskStatus[ServerInfo] = anyio.TASK_STATUS_IGNORED,
    **options: Unpack[ServerOptions],
) -> None:
    """Serve the ASGI application ``app`` until cancelled, in the caller's task group.

    ``info = await tg.start(serve_app, app, "127.0.0.1", 0)`` returns a
    :class:`ServerInfo` once every address listens (port 0 picks a free
    port); cancelling the task shuts the server down gracefully. The keyword
    options are :class:`~anywire.server.ServerConfig`'s fields.

    :raises LifespanError: the application's lifespan startup failed
    :raises OSError: an address could not be bound
    """
    config = ServerConfig(host=host, port=port, **options)
    await Server(app, config).run(task_status=task_status)


def serve(
    app: ASGIApp,
    host: str | None = "127.0.0.1",
    port: int = 8000,
    *,
    backend: str = "asyncio",
    **options: Unpack[ServerOptions],
) -> None:
    """Run ``app`` until SIGINT or SIGTERM (blocking), on ``backend`` (asyncio or trio).

    The first signal shuts the server down gracefully; a second one cancels
    what is left at once.

    :raises LifespanError: the application's startup or shutdown failed
    :raises OSError: an address could not be bound
    """
    config = ServerConfig(host=host, port=port, **options)
    run_blocking(app, config, backend=backend)


def run_blocking(
    app: ASGIApp,
    config: ServerConfig,
    *,
    backend: str = "asyncio",
    on_started: Callable[[ServerInfo], object] | None = None,
) -> None:
    """:func:`serve` with a ready config, and a callback once listening (for the CLI)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "serve() handles SIGINT/SIGTERM, so it runs in the main thread only; "
            "elsewhere run serve_app() in a task group and cancel it to stop"
        )
    server = Server(app, config)
    anyio.run(partial(_serve_until_signal, server, on_started), backend=backend)
    if server.lifespan_shutdown_failed:
        raise LifespanError("lifespan shutdown failed", phase="shutdown")


class _Started:
    """A task status that calls a callback: the host task runs the server itself."""

    def __init__(self, callback: Callable[[ServerInfo], object] | None) -> None:
        self._callback = callback

    def started(self, value: ServerInfo | None = None) -> None:
        if self._callback is not None and value is not None:
            self._callback(value)


async def _serve_until_signal(
    server: Server, on_started: Callable[[ServerInfo], object] | None
) -> None:
    stop = anyio.CancelScope()
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with owned_task_group() as tg:
            tg.start_soon(_watch_signals, signals, server, stop)
            with stop:
                await server.run(task_status=_Started(on_started))
            tg.cancel_scope.cancel()


async def _watch_signals(
    signals: AsyncIterator[signal.Signals], server: Server, stop: anyio.CancelScope
) -> None:
    log: logging.Logger = server.config.log
    async for signum in signals:
        name = signal.Signals(signum).name
        if stop.cancel_called:
            log.warning("%s again: exiting at once", name)
            server.force_exit()
        else:
            log.info("%s received: shutting down gracefully (again to exit at once)", name)
            stop.cancel()
