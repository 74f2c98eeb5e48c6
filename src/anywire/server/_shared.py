"""What every connection of one server shares: the app, settings, state and shutdown.

:class:`Runner` is built once per server; each accepted connection gets a
:class:`ConnectionInfo` (addresses, TLS) and asks the runner for its ASGI
scopes. Shutdown is two calls: :meth:`Runner.begin_shutdown` (graceful: idle
connections close at once, the others get the grace period) and
:meth:`Runner.force` (cancel everything now).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSAttribute

from anywire._http import Request
from anywire._http._core import IdleWatch
from anywire.errors import AnywireError

from ._config import ASGIApp, ServerConfig
from ._logging import DateHeader
from ._proxy import ProxyTrust

__all__ = ["ClientDisconnected", "ConnectionInfo", "Runner", "ShutdownAware"]

_ASGI_VERSION = "3.0"
_SPEC_VERSION = "2.4"
_WS_SCHEMES = {"http": "ws", "https": "wss"}
_HTTP_SCHEMES = {"ws": "http", "wss": "https"}


class ClientDisconnected(AnywireError, OSError):
    """``send()`` was called after the client went away (ASGI spec 2.4: an OSError)."""


class ShutdownAware(Protocol):
    """A connection that reacts to the server's shutdown."""

    def shut_down(self, deadline: float) -> None: ...

    def cancel(self) -> None: ...


@dataclass(frozen=True)
class ConnectionInfo:
    """The addresses of one connection and whether it runs over TLS."""

    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    tls: bool

    @classmethod
    def of(cls, stream: ByteStream) -> ConnectionInfo:
        local = stream.extra(SocketAttribute.local_address, None)
        if isinstance(local, str):
            server: tuple[str, int | None] | None = (local, None)
        else:
            server = _ip(local)
        return cls(
            client=_ip(stream.extra(SocketAttribute.remote_address, None)),
            server=server,
            tls=stream.extra(TLSAttribute.ssl_object, None) is not None,
        )


def _ip(address: object) -> tuple[str, int] | None:
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return None


class Runner:
    """The state shared by the connections of one server."""

    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app = app
        self.config = config
        self.log = config.log
        self.http_limits = config.http_limits()
        #: Keep-alive and header timeouts of waiting connections (run by the server).
        self.idle_watch = IdleWatch.for_limits(self.http_limits)
        self.ws_settings = config.websocket_settings()
        self.trust = ProxyTrust(config.forwarded_allow_ips) if config.proxy_headers else None
        self.state: dict[str, Any] = {}
        self.date = DateHeader()
        self.stopping = anyio.Event()
        self.connections: set[ShutdownAware] = set()
        self._deadline = math.inf

    @property
    def deadline(self) -> float:
        """When connections get cancelled (infinity until shutdown begins)."""
        return self._deadline

    def begin_shutdown(self) -> None:
        """Stop serving gracefully: each connection finishes within ``graceful_shutdown``."""
        if self.stopping.is_set():
            return
        self._deadline = anyio.current_time() + self.config.graceful_shutdown
        self.stopping.set()
        for connection in list(self.connections):
            connection.shut_down(self._deadline)

    def force(self) -> None:
        """Cancel every connection now."""
        self._deadline = -math.inf
        self.stopping.set()
        for connection in list(self.connections):
            connection.cancel()

    def scope(self, kind: str, request: Request, info: ConnectionInfo) -> dict[str, Any]:
        """The ASGI scope of ``request`` (``kind`` is ``"http"`` or ``"websocket"``)."""
        client, scheme = info.client, "https" if info.tls else "http"
        if self.trust is not None:
            client, scheme = self.trust.resolve(client, scheme, request.headers)
        schemes = _WS_SCHEMES if kind == "websocket" else _HTTP_SCHEMES
        root = self.config.root_path
        scope = {
            "type": kind,
            "asgi": {"version": _ASGI_VERSION, "spec_version": _SPEC_VERSION},
            "http_version": request.http_version,
            "scheme": schemes.get(scheme, scheme),
            "path": root + request.path,
            "raw_path": root.encode("utf-8") + request.raw_path,
            "query_string": request.query_string,
            "root_path": root,
            "headers": list(request.headers),
            "client": client,
            "server": info.server,
            "state": dict(self.state),
        }
        if kind == "http":
            scope["method"] = request.method
        return scope
