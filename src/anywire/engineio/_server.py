"""The Engine.IO server: python-engineio's ``AsyncServer`` API, structured, on anyio.

The server owns a task group for the sessions' heartbeat timers, handlers
started with ``async_handlers`` and background tasks. Enter it with
``async with server:`` (``ASGIApp`` does it in its lifespan)::

    eio = AsyncServer()

    @eio.on("message")
    async def message(sid, data):
        await eio.send(sid, data)

    app = ASGIApp(eio)      # serve it: its lifespan starts and stops the server
"""

from __future__ import annotations

import inspect
import logging
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar, overload

import anyio
from anyio.abc import TaskGroup, TaskStatus

from anywire._tasks import clock
from anywire.engineio._client_utils import (
    BackgroundTask,
    SeedUtilities,
    call_handler,
    transports_of,
)
from anywire.engineio._errors import EngineIOError, SessionClosed
from anywire.engineio._packets import DEFAULT_JSON, JsonModule, Packet, PacketType, Transport
from anywire.engineio._server_conn import Conn
from anywire.engineio._server_handlers import HandlerRunner
from anywire.engineio._server_requests import RequestHandling
from anywire.engineio._server_session import ServerConfig
from anywire.engineio._session_events import DisconnectReason

__all__ = ["AsyncServer", "ConnectionRefusedError", "server_reason"]

_log = logging.getLogger("anywire.engineio.server")
_Handler = TypeVar("_Handler", bound=Callable[..., Any])


class ConnectionRefusedError(EngineIOError):
    """Raise it in a ``connect`` handler to refuse the client with data.

    The client gets 401 with the JSON of ``args[0]`` (one argument), of the
    list of arguments (several), or ``"Unauthorized"`` (none).
    """

    @property
    def error_data(self) -> Any:
        if not self.args:
            return None
        return self.args[0] if len(self.args) == 1 else list(self.args)


class server_reason:
    """Disconnection reasons passed to the ``disconnect`` handler."""

    SERVER_DISCONNECT = DisconnectReason.SERVER_DISCONNECT
    CLIENT_DISCONNECT = DisconnectReason.CLIENT_DISCONNECT
    PING_TIMEOUT = DisconnectReason.PING_TIMEOUT
    TRANSPORT_CLOSE = DisconnectReason.TRANSPORT_CLOSE
    TRANSPORT_ERROR = DisconnectReason.TRANSPORT_ERROR


def _ping(ping_interval: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(ping_interval, int | float):
        return float(ping_interval), 0.0
    interval, grace = ping_interval
    return float(interval), float(grace)


def _logger(logger: bool | logging.Logger) -> logging.Logger:
    if isinstance(logger, logging.Logger):
        return logger
    if logger:
        _log.setLevel(logging.INFO)  # python-engineio: True means INFO; we add no handler
    return _log


class AsyncServer(RequestHandling, SeedUtilities):
    """An Engine.IO v4 server (python-engineio's ``AsyncServer`` options and methods).

    ``async_mode`` is accepted for compatibility; anywire serves ASGI on
    asyncio or trio, and aiohttp apps (:meth:`attach`) on asyncio.
    ``monitor_clients`` is accepted: each session has its own heartbeat
    timer, always on. Extra keyword arguments: ``max_queue``
    and ``max_queue_bytes`` (the bounds of each session's outgoing queue),
    ``upgrade_timeout``, ``close_timeout`` and ``shutdown_timeout`` (seconds
    :meth:`shutdown` waits for sessions to deliver their CLOSE packet).
    """

    reason = server_reason

    def __init__(
        self,
        async_mode: str | None = None,
        ping_interval: float | Sequence[float] = 25,
        ping_timeout: float = 20,
        max_http_buffer_size: int = 1_000_000,
        allow_upgrades: bool = True,
        http_compression: bool = True,
        compression_threshold: int = 1024,
        cookie: str | dict[str, Any] | None = None,
        cors_allowed_origins: str | Sequence[str] | Callable[..., Any] | None = None,
        cors_credentials: bool = True,
        logger: bool | logging.Logger = False,
        json: JsonModule | None = None,
        async_handlers: bool = True,
        monitor_clients: bool | None = None,
        transports: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if async_mode not in (None, "asgi", "aiohttp", "anyio", "asyncio", "trio"):
            raise ValueError(f"invalid async_mode {async_mode!r}: anywire serves ASGI or aiohttp")
        self.async_mode = "aiohttp" if async_mode == "aiohttp" else "asgi"
        self.ping_interval, self.ping_interval_grace_period = _ping(ping_interval)
        self.ping_timeout = float(ping_timeout)
        self.max_http_buffer_size = max_http_buffer_size
        self.allow_upgrades = allow_upgrades
        self.http_compression = http_compression
        self.compression_threshold = compression_threshold
        self.cookie = cookie
        self.cors_allowed_origins = cors_allowed_origins
        self.cors_credentials = cors_credentials
        self.logger = _logger(logger)
        self._json: JsonModule = json or DEFAULT_JSON
        self.async_handlers = async_handlers
        self.monitor_clients = True if monitor_clients is None else monitor_clients
        self.transports = transports_of(transports)
        self.shutdown_timeout = float(kwargs.pop("shutdown_timeout", 5.0))
        upgrades = (Transport.WEBSOCKET,) if allow_upgrades else ()
        self._config = ServerConfig(
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            ping_interval_grace=self.ping_interval_grace_period,
            max_payload=max_http_buffer_size,
            upgrades=tuple(t for t in upgrades if t in self.transports),
            **{k: kwargs.pop(k) for k in list(kwargs) if k in _CONFIG_KEYS},
        )
        if kwargs:
            self.logger.debug("ignored AsyncServer options: %s", sorted(kwargs))
        self.handlers: dict[str, Callable[..., Any]] = {}
        self._conns: dict[str, Conn] = {}
        self._tg: TaskGroup | None = None
        #: the clock of the loop the server runs in (anyio.current_time, cheaper)
        self._now: Callable[[], float] = anyio.current_time
        self._runner: HandlerRunner | None = None
        self._service_scope: anyio.CancelScope | None = None
        self._service_done: anyio.Event | None = None
        self._stack: AsyncExitStack | None = None

    def __repr__(self) -> str:
        state = "running" if self._tg is not None else "stopped"
        return f"<AsyncServer {state} sessions={len(self._conns)}>"

    # -- python-engineio's API -------------------------------------------------------

    def is_asyncio_based(self) -> bool:
        """True unless running under trio: the API is async/await on either backend."""
        trio: Any = sys.modules.get("trio")
        if trio is not None:
            try:
                trio.lowlevel.current_task()
            except RuntimeError:
                return True
            return False
        return True

    def async_modes(self) -> list[str]:
        """``"asgi"`` (asyncio or trio), and ``"aiohttp"`` (:meth:`attach`) on asyncio."""
        return ["aiohttp", "asgi"] if self.is_asyncio_based() else ["asgi"]

    @overload
    def on(self, event: str, handler: None = None) -> Callable[[_Handler], _Handler]: ...

    @overload
    def on(self, event: str, handler: _Handler) -> _Handler: ...

    def on(self, event: str, handler: Callable[..., Any] | None = None) -> Any:
        """Register ``handler`` for ``connect``, ``message`` or ``disconnect``; a decorator
        when ``handler`` is omitted."""
        if event not in ("connect", "message", "disconnect"):
            raise ValueError(f"invalid event {event!r}")

        def set_handler(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.handlers[event] = handler
            return handler

        return set_handler if handler is None else set_handler(handler)

    async def send(self, sid: str, data: Any) -> None:
        """Send a message: ``str`` text, ``bytes`` binary, anything else as JSON text.

        Raises ``SocketIsClosedError`` (:class:`SessionClosed`) for an unknown
        or ended session."""
        if not isinstance(data, str | bytes):
            out = self._json.dumps(data)
            data = out.decode() if isinstance(out, bytes) else out
        await self.send_packet(sid, Packet(PacketType.MESSAGE, data))

    async def send_packet(self, sid: str, pkt: Packet) -> None:
        """Send a raw :class:`Packet` (raises ``SocketIsClosedError`` as :meth:`send`)."""
        conn = self._conn(sid)
        events = conn.core.send_packet(pkt, self._now())
        if events:  # else queued behind a batch being written: no timer moved
            calls, _ = conn.apply(events)
            if calls:
                await self._run_calls(conn, calls)

    async def disconnect(self, sid: str | None = None, reason: str | None = None) -> None:
        """Close one session (or all): queued packets then CLOSE go out; ``disconnect`` fires."""
        conns = list(self._conns.values()) if sid is None else [self._conns.get(sid)]
        why = DisconnectReason(reason) if reason else DisconnectReason.SERVER_DISCONNECT
        for conn in conns:
            if conn is None:
                continue
            calls, _ = conn.apply(conn.core.close(self._now(), reason=why))
            await self._run_calls(conn, calls)

    async def get_session(self, sid: str) -> dict[str, Any]:
        """The user session of ``sid`` (``KeyError`` if unknown)."""
        conn = self._conns.get(sid)
        if conn is None:
            raise KeyError("Session not found")
        return conn.user_session

    async def save_session(self, sid: str, session: dict[str, Any]) -> None:
        conn = self._conns.get(sid)
        if conn is None:
            raise KeyError("Session not found")
        conn.user_session = session

    @asynccontextmanager
    async def session(self, sid: str) -> AsyncIterator[dict[str, Any]]:
        """``async with eio.session(sid) as session:`` saves it at the end."""
        data = await self.get_session(sid)
        yield data
        await self.save_session(sid, data)

    def transport(self, sid: str) -> str:
        """``"polling"`` or ``"websocket"`` (``KeyError`` if unknown)."""
        conn = self._conns.get(sid)
        if conn is None:
            raise KeyError("Session not found")
        return conn.transport.value

    def attach(self, app: Any, engineio_path: str = "engine.io") -> None:
        """Serve the server at ``/engineio_path/`` of ``app``.

        An aiohttp ``web.Application`` (asyncio only) gets a route and runs the
        server for its life (``cleanup_ctx``). An app with ``mount()`` (Starlette,
        FastAPI) gets ``ASGIApp`` mounted; its lifespan must enter ``async with
        server:`` (see the docs). Anything else: ``TypeError``.
        """
        from anywire.engineio._aiohttp import attach_aiohttp, is_aiohttp_app
        from anywire.engineio._asgi_app import ASGIApp

        if is_aiohttp_app(app):
            attach_aiohttp(self, app, engineio_path)
            return
        mount = getattr(app, "mount", None)
        if not callable(mount):
            raise TypeError(_cannot_attach(app))
        mount("/" + engineio_path.strip("/"), ASGIApp(self, engineio_path=""))

    def start_background_task(
        self, target: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> BackgroundTask:
        """Run ``target(*args, **kwargs)`` in the server's task group; await or cancel it."""
        if self._tg is None:
            raise RuntimeError("the server is not running: enter `async with server:` first")
        task = BackgroundTask(target, args, kwargs)
        self._tg.start_soon(task.run, self.logger)
        return task

    def generate_id(self) -> str:
        """A session id from :mod:`secrets` (20 URL-safe characters)."""
        return secrets.token_urlsafe(15)

    # -- lifetime ----------------------------------------------------------------------

    async def __aenter__(self) -> AsyncServer:
        if self._tg is not None:
            raise RuntimeError("the server is already running")
        async with AsyncExitStack() as stack:
            outer = await stack.enter_async_context(anyio.create_task_group())
            await outer.start(self._service)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        await self.shutdown()
        stack, self._stack = self._stack, None
        if stack is not None:
            return await stack.__aexit__(*exc_info)
        return None

    async def _service(self, *, task_status: TaskStatus[None]) -> None:
        self._service_done = anyio.Event()
        try:
            with anyio.CancelScope() as scope:
                self._service_scope = scope
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    self._now = clock()
                    self._runner = HandlerRunner(tg, self.logger)
                    task_status.started()
                    await anyio.sleep_forever()
        finally:
            self._tg = self._runner = None
            self._service_done.set()

    async def shutdown(self) -> None:
        """Close every session (CLOSE packet), wait for them up to ``shutdown_timeout``,
        then cancel the background tasks. The server can be entered again afterwards."""
        if self._tg is None:
            return
        with anyio.CancelScope(shield=True):
            await self.disconnect()
            with anyio.move_on_after(self.shutdown_timeout):
                for conn in list(self._conns.values()):
                    await conn.finished.wait()
            for conn in list(self._conns.values()):
                conn.finish()
            if self._service_scope is not None:
                self._service_scope.cancel()
            if self._service_done is not None:
                await self._service_done.wait()

    # -- internals -----------------------------------------------------------------

    def _conn(self, sid: str) -> Conn:
        conn = self._conns.get(sid)
        if conn is None:
            raise SessionClosed("unknown session")
        return conn

    async def _run_connect(self, conn: Conn) -> tuple[bool, Any]:
        handler = self.handlers.get("connect")
        if handler is None:
            return True, None
        try:
            ret = handler(conn.sid, conn.environ)
            if inspect.isawaitable(ret):
                ret = await ret
        except ConnectionRefusedError as exc:
            return False, exc.error_data
        except Exception:
            self.logger.exception("connect handler error")
            return False, None
        if ret is None or ret is True:
            return True, None
        return False, ret or None

    async def _trigger(self, event: str, *args: Any) -> Any:
        handler = self.handlers.get(event)
        if handler is None:
            return None
        try:
            ret = call_handler(handler, args)
            if inspect.isawaitable(ret):
                ret = await ret
            return ret
        except Exception:
            self.logger.exception("%s handler error", event)
            return None


def _cannot_attach(app: Any) -> str:
    framework = type(app).__module__.partition(".")[0]
    supported = (
        "attach() takes an aiohttp web.Application or an app with mount() (Starlette, FastAPI)"
    )
    if framework == "sanic":
        return (
            f"{supported}. A Sanic app is an ASGI app: serve "
            "ASGIApp(server, other_asgi_app=sanic_app) with an ASGI server instead."
        )
    if framework == "tornado":
        return (
            f"{supported}. Tornado is not ASGI: serve ASGIApp(server) on its own port "
            "(anywire.serve, uvicorn) beside the Tornado app."
        )
    return f"{supported}, not {type(app).__name__}; or serve ASGIApp(server, other_asgi_app=app)."


_CONFIG_KEYS = frozenset({"max_queue", "max_queue_bytes", "upgrade_timeout", "close_timeout"})
