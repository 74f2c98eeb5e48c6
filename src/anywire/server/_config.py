"""The runner's settings: one frozen :class:`ServerConfig`, and what is derived from it.

Every keyword of :func:`~anywire.server.serve` and :func:`~anywire.server.serve_app`
(besides ``app``, ``host``, ``port`` and ``backend``) is a field here;
:class:`ServerOptions` spells the same names for type checkers.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict

from anywire._asgi import ASGIApp, Message, Receive, Scope, Send
from anywire._http import HTTPLimits
from anywire.websocket._connection import WebSocketOptions
from anywire.websocket._server import ServerSettings

__all__ = [
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "ServerConfig",
    "ServerOptions",
    "TCPBind",
    "UnixBind",
    "parse_bind",
]


LifespanMode = Literal["auto", "on", "off"]

_LOGGER = logging.getLogger("anywire.server")


@dataclass(frozen=True)
class TCPBind:
    """Listen on ``host:port`` (``host`` None: every interface; ``port`` 0: any free port)."""

    host: str | None
    port: int


@dataclass(frozen=True)
class UnixBind:
    """Listen on the Unix socket ``path``."""

    path: str


def parse_bind(text: str) -> TCPBind | UnixBind:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` (every interface) or ``unix:PATH``."""
    if text.startswith("unix:"):
        return UnixBind(text[5:])
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bind {text!r} is not HOST:PORT, [IPv6]:PORT or unix:PATH")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return TCPBind(host or None, int(port))


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything the runner needs besides the application.

    Listening: ``binds`` (``"HOST:PORT"``, ``"[::1]:PORT"``, ``"unix:PATH"``)
    and ``uds`` (a Unix socket path) replace ``host``/``port`` when given.
    Times are seconds; ``None`` limits mean no limit.
    """

    host: str | None = "127.0.0.1"
    port: int = 8000
    binds: Sequence[str] = ()
    uds: str | None = None
    backlog: int = 2048
    ssl_context: ssl.SSLContext | None = None
    certfile: str | None = None
    keyfile: str | None = None
    tls_handshake_timeout: float = 10.0
    root_path: str = ""
    proxy_headers: bool = False
    forwarded_allow_ips: str | Sequence[str] = ("127.0.0.1",)
    graceful_shutdown: float = 10.0
    max_connections: int | None = None
    max_body_size: int | None = 1024 * 1024
    max_header_bytes: int = 16384
    header_timeout: float | None = 10.0
    keep_alive_timeout: float | None = 5.0
    ws_max_message_size: int | None = 1024 * 1024
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float | None = 20.0
    ws_close_timeout: float = 10.0
    ws_max_queue: int = 16
    ws_compression: bool = True
    lifespan: LifespanMode = "auto"
    lifespan_timeout: float | None = 60.0
    access_log: bool = True
    server_header: bool = True
    date_header: bool = True
    logger: logging.Logger | None = None

    def __post_init__(self) -> None:
        if self.graceful_shutdown < 0:
            raise ValueError("graceful_shutdown must be >= 0")
        if self.lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {self.lifespan!r}")
        if self.keyfile is not None and self.certfile is None:
            raise ValueError("keyfile needs certfile")
        if self.ssl_context is not None and self.certfile is not None:
            raise ValueError("give ssl_context or certfile/keyfile, not both")
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        for bind in self.binds:
            parse_bind(bind)  # fail early on a typo

    @property
    def log(self) -> logging.Logger:
        """The logger for server events (``anywire.server`` by default)."""
        return self.logger or _LOGGER

    def listen_on(self) -> list[TCPBind | UnixBind]:
        """The addresses to listen on, in order."""
        targets = [parse_bind(bind) for bind in self.binds]
        if self.uds is not None:
            targets.append(UnixBind(self.uds))
        return targets or [TCPBind(self.host, self.port)]

    def tls(self) -> ssl.SSLContext | None:
        """The TLS context: ``ssl_context``, or one built from ``certfile``/``keyfile``."""
        if self.ssl_context is not None or self.certfile is None:
            return self.ssl_context
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def http_limits(self) -> HTTPLimits:
        """The bounds of each HTTP/1.1 connection."""
        return HTTPLimits(
            max_header_bytes=self.max_header_bytes,
            max_body_size=self.max_body_size,
            header_timeout=self.header_timeout,
            keep_alive_timeout=self.keep_alive_timeout,
        )

    def websocket_settings(self) -> ServerSettings:
        """The settings of WebSockets the runner accepts for ASGI ``websocket.accept``."""
        options = WebSocketOptions(
            ping_interval=self.ws_ping_interval,
            ping_timeout=self.ws_ping_timeout,
            max_message_size=self.ws_max_message_size,
            max_queue=self.ws_max_queue,
            close_timeout=self.ws_close_timeout,
        )
        return ServerSettings(
            compression=self.ws_compression,
            options=options,
            http_limits=self.http_limits(),
            logger=self.log,
        )


class ServerOptions(TypedDict, total=False):
    """The keyword options of ``serve()`` and ``serve_app()`` (see :class:`ServerConfig`)."""

    binds: Sequence[str]
    uds: str | None
    backlog: int
    ssl_context: ssl.SSLContext | None
    certfile: str | None
    keyfile: str | None
    tls_handshake_timeout: float
    root_path: str
    proxy_headers: bool
    forwarded_allow_ips: str | Sequence[str]
    graceful_shutdown: float
    max_connections: int | None
    max_body_size: int | None
    max_header_bytes: int
    header_timeout: float | None
    keep_alive_timeout: float | None
    ws_max_message_size: int | None
    ws_ping_interval: float | None
    ws_ping_timeout: float | None
    ws_close_timeout: float
    ws_max_queue: int
    ws_compression: bool
    lifespan: LifespanMode
    lifespan_timeout: float | None
    access_log: bool
    server_header: bool
    date_header: bool
    logger: logging.Logger | None
