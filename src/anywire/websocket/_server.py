"""The WebSocket server: ``accept()`` from ASGI or a byte stream, and ``serve_websocket``."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketStream, TaskStatus
from wsproto.connection import ConnectionType
from wsproto.extensions import Extension

from anywire._asgi import Receive, Scope, Send
from anywire._http import HTTPLimits, Request, ServerConnection
from anywire.errors import InvalidHandshake, LimitExceeded, ProtocolError
from anywire.streams import BufferedStream, serve_tcp
from anywire.websocket._asgi import ASGIWebSocket, accept_asgi
from anywire.websocket._connection import WebSocket, WebSocketOptions
from anywire.websocket._deflate import default_extensions
from anywire.websocket._frames import FastConnection
from anywire.websocket._handshake import (
    ClientOffer,
    Headers,
    check_origin,
    negotiate_extensions,
    normalize_headers,
    parse_client_request,
    server_response_headers,
)

__all__ = [
    "Accept",
    "AioServer",
    "HandshakeRequest",
    "ServerSettings",
    "accept",
    "accept_stream",
    "choose_subprotocol",
    "complete_handshake",
    "refuse_handshake",
    "serve_websocket",
]

_log = logging.getLogger("anywire.websocket")

ASGIScope = tuple[Scope, Receive, Send]
SubprotocolChooser = Callable[["HandshakeRequest"], "str | None"]


@dataclass(frozen=True)
class HandshakeRequest:
    """What ``choose_subprotocol`` sees: the client's request, before the answer."""

    path: str
    headers: Headers
    subprotocols: list[str]
    server_subprotocols: list[str] = field(default_factory=list)
    origin: str | None = None


def first_common_subprotocol(request: HandshakeRequest) -> str | None:
    """The default choice: the client's first subprotocol that the server supports."""
    return next((p for p in request.subprotocols if p in request.server_subprotocols), None)


@dataclass(frozen=True)
class ServerSettings:
    """Everything ``accept()`` needs besides the connection itself."""

    subprotocols: list[str] = field(default_factory=list)
    choose_subprotocol: SubprotocolChooser = first_common_subprotocol
    allowed_origins: str | Sequence[str] | None = None
    compression: bool = True
    compression_threshold: int = 128
    options: WebSocketOptions = WebSocketOptions()
    http_limits: HTTPLimits = HTTPLimits()
    extra_headers: Sequence[tuple[str, str]] = ()
    logger: logging.Logger = _log

    def extensions(self) -> list[Extension]:
        return default_extensions(
            compression=self.compression,
            max_message_size=self.options.max_message_size,
            threshold=self.compression_threshold,
        )


def _settings(
    subprotocols: str | Sequence[str] | None,
    receive_bytes: int,
    ping_interval: float | None,
    max_message_size: int | None,
    *,
    choose_subprotocol: SubprotocolChooser | None = None,
    allowed_origins: str | Sequence[str] | None = None,
    compression: bool = True,
    compression_threshold: int = 128,
    ping_timeout: float | None = None,
    max_queue: int = 16,
    close_timeout: float = 10.0,
    http_limits: HTTPLimits | None = None,
    extra_headers: Sequence[tuple[str, str]] = (),
    logger: logging.Logger | None = None,
) -> ServerSettings:
    if isinstance(subprotocols, str):
        subprotocols = [subprotocols]
    options = WebSocketOptions(
        receive_bytes=receive_bytes,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_message_size=max_message_size,
        max_queue=max_queue,
        close_timeout=close_timeout,
    )
    return ServerSettings(
        subprotocols=list(subprotocols or []),
        choose_subprotocol=choose_subprotocol or first_common_subprotocol,
        allowed_origins=allowed_origins,
        compression=compression,
        compression_threshold=compression_threshold,
        options=options,
        http_limits=http_limits or HTTPLimits(),
        extra_headers=extra_headers,
        logger=logger or _log,
    )


class Accept(anyio.AsyncContextManagerMixin):
    """What :func:`accept` returns: ``await`` it (pull mode) or use ``async with``."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        asgi: ASGIScope | None = None,
        stream: ByteStream | None = None,
        sock: socket.socket | None = None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        ws_class: type[WebSocket] = WebSocket,
    ) -> None:
        given = [x for x in (asgi, stream, sock) if x is not None]
        if len(given) != 1:
            raise TypeError("accept() takes exactly one of asgi=, stream= or sock=")
        self._settings = settings
        self._asgi = asgi
        self._stream = stream
        self._sock = sock
        self._headers = headers
        self._ws_class = ws_class

    def __await__(self) -> Generator[Any, None, WebSocket | ASGIWebSocket]:
        return self.open().__await__()

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[WebSocket | ASGIWebSocket]:
        ws = await self.open()
        async with ws:
            yield ws

    async def open(self) -> WebSocket | ASGIWebSocket:
        """Run the server side of the opening handshake."""
        if self._asgi is not None:
            return await accept_asgi(self._asgi, self._settings, ws_class=self._ws_class)
        stream = self._stream
        if stream is None:
            assert self._sock is not None
            stream = await SocketStream.from_socket(self._sock)
        if self._headers is not None:
            return await self._accept_with_headers(stream, normalize_headers(self._headers))
        return await accept_stream(stream, self._settings, ws_class=self._ws_class)

    async def _accept_with_headers(self, stream: ByteStream, headers: Headers) -> WebSocket:
        offer = parse_client_request("GET", headers)
        subprotocol = choose_subprotocol(offer, "/", headers, self._settings)
        response_headers, protocol = _answer(
            offer, subprotocol, self._settings, self._settings.extra_headers
        )
        head = _response_head(response_headers)
        await stream.send(head)
        return self._ws_class(
            stream,
            protocol,
            subprotocol=subprotocol,
            options=self._settings.options,
            request_headers=headers,
            response_headers=response_headers,
            logger=self._settings.logger,
        )


def _response_head(headers: Headers) -> bytes:
    lines = ["HTTP/1.1 101 Switching Protocols"] + [f"{n}: {v}" for n, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def choose_subprotocol(
    offer: ClientOffer, path: str, headers: Headers, settings: ServerSettings
) -> str | None:
    """Check the origin (403 if refused) and let ``settings`` choose the subprotocol."""
    if not check_origin(offer, settings.allowed_origins):
        raise InvalidHandshake(f"origin {offer.origin!r} is not allowed", status_code=403)
    request = HandshakeRequest(
        path=path,
        headers=headers,
        subprotocols=offer.subprotocols,
        server_subprotocols=settings.subprotocols,
        origin=offer.origin,
    )
    return settings.choose_subprotocol(request)


def _answer(
    offer: ClientOffer,
    subprotocol: str | None,
    settings: ServerSettings,
    extra_headers: Sequence[tuple[str, str]],
) -> tuple[Headers, FastConnection]:
    """Negotiate extensions; return the 101 headers and the protocol object."""
    ext_header, accepted = negotiate_extensions(offer.extensions, settings.extensions())
    response_headers = server_response_headers(
        offer,
        subprotocol=subprotocol,
        extensions_header=ext_header,
        extra_headers=extra_headers,
    )
    return response_headers, FastConnection(ConnectionType.SERVER, extensions=accepted)


async def complete_handshake(
    http: ServerConnection,
    request: Request,
    settings: ServerSettings,
    subprotocol: str | None,
    extra_headers: Sequence[tuple[str, str]] = (),
    *,
    ws_class: type[WebSocket] = WebSocket,
) -> WebSocket:
    """Answer ``request`` (read by ``http``) with 101 and return the connection.

    The one place a server-side WebSocket comes to life over the HTTP layer:
    :func:`accept_stream` and the ASGI runner both end here. ``subprotocol``
    is already chosen (by ``settings`` or by an ASGI app); ``extra_headers``
    go into the 101 response. Extensions (compression) and the connection's
    options come from ``settings``. Raises :class:`InvalidHandshake` if the
    request is not a valid upgrade (nothing is sent then: see
    :func:`refuse_handshake`).
    """
    headers = normalize_headers(request.headers)
    offer = parse_client_request(request.method, headers, http_version=request.http_version)
    response_headers, protocol = _answer(offer, subprotocol, settings, extra_headers)
    trailing = await http.switch_protocols(response_headers)
    if trailing:
        protocol.receive_data(trailing)
    return ws_class(
        http.stream,
        protocol,
        subprotocol=subprotocol,
        options=settings.options,
        request_headers=headers,
        response_headers=response_headers,
        path=request.path,
        logger=settings.logger,
    )


async def accept_stream(
    stream: ByteStream, settings: ServerSettings, *, ws_class: type[WebSocket] = WebSocket
) -> WebSocket:
    """Read an upgrade request from ``stream`` with the HTTP layer and answer it.

    A request that is not a valid upgrade is answered (400, 403, 426) and the
    stream closed; :class:`InvalidHandshake` is raised.
    """
    http = ServerConnection(stream, limits=settings.http_limits)
    request = await http.next_request()
    if request is None:
        raise InvalidHandshake("the client closed the connection before a request")
    headers = normalize_headers(request.headers)
    try:
        offer = parse_client_request(request.method, headers, http_version=request.http_version)
        subprotocol = choose_subprotocol(offer, request.path, headers, settings)
    except InvalidHandshake as exc:
        await refuse_handshake(http, exc)
        raise
    return await complete_handshake(
        http, request, settings, subprotocol, settings.extra_headers, ws_class=ws_class
    )


async def refuse_handshake(http: ServerConnection, exc: InvalidHandshake) -> None:
    """Answer a bad upgrade request with ``exc.status_code`` (400 if unset) and close."""
    status = exc.status_code or 400
    extra = [("sec-websocket-version", "13")] if status == 426 else []
    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
        await http.send_error(status, str(exc), headers=extra)


def accept(
    asgi: ASGIScope | None = None,
    stream: ByteStream | None = None,
    sock: socket.socket | None = None,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    subprotocols: str | Sequence[str] | None = None,
    receive_bytes: int = 65536,
    ping_interval: float | None = None,
    max_message_size: int | None = 1024 * 1024,
    **options: Any,
) -> Accept:
    """Accept a WebSocket connection; ``await`` the result or use ``async with``.

    Exactly one of ``asgi=(scope, receive, send)``, ``stream=`` (an anyio byte
    stream whose upgrade request is read here, or already read when
    ``headers=`` is given) or ``sock=`` (a connected ``socket.socket``).
    Keyword options: ``choose_subprotocol``, ``allowed_origins`` (default:
    same origin), ``compression``, ``compression_threshold``, ``ping_timeout``,
    ``max_queue``, ``close_timeout``, ``http_limits``, ``logger``.
    """
    ws_class = options.pop("ws_class", WebSocket)
    if options.pop("aiohttp", None) is not None:
        raise TypeError("aiohttp= is not supported: anywire runs on anyio (use asgi= or stream=)")
    settings = _settings(subprotocols, receive_bytes, ping_interval, max_message_size, **options)
    return Accept(settings, asgi=asgi, stream=stream, sock=sock, headers=headers, ws_class=ws_class)


class AioServer(WebSocket):
    """simple-websocket's server class name: ``await AioServer.accept(asgi=...)``.

    Override :meth:`choose_subprotocol` in a subclass to pick the subprotocol;
    it runs before the connection exists, so it reads everything from
    ``request`` (``request.subprotocols``, ``request.server_subprotocols``).
    """

    @classmethod
    async def accept(
        cls,
        aiohttp: object = None,
        asgi: ASGIScope | None = None,
        sock: socket.socket | None = None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        subprotocols: str | Sequence[str] | None = None,
        receive_bytes: int = 65536,
        ping_interval: float | None = None,
        max_message_size: int | None = 1024 * 1024,
        **options: Any,
    ) -> WebSocket | ASGIWebSocket:
        options.setdefault("choose_subprotocol", lambda req: cls.choose_subprotocol(None, req))
        return await accept(
            asgi=asgi,
            sock=sock,
            headers=headers,
            subprotocols=subprotocols,
            receive_bytes=receive_bytes,
            ping_interval=ping_interval,
            max_message_size=max_message_size,
            aiohttp=aiohttp,
            ws_class=cls,
            **options,
        )

    def choose_subprotocol(self: Any, request: HandshakeRequest) -> str | None:
        """Pick the subprotocol for ``request`` (default: the first common one)."""
        return first_common_subprotocol(request)


WebSocketHandler = Callable[[WebSocket], Awaitable[None]]


async def serve_websocket(
    handler: WebSocketHandler,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl_context: ssl.SSLContext | None = None,
    subprotocols: str | Sequence[str] | None = None,
    receive_bytes: int = 65536,
    ping_interval: float | None = None,
    max_message_size: int | None = 1024 * 1024,
    graceful_shutdown: float | None = 5.0,
    task_status: TaskStatus[Any] = anyio.TASK_STATUS_IGNORED,
    **options: Any,
) -> None:
    """Serve WebSocket connections on ``host:port`` until cancelled.

    ``handler(ws)`` runs once per connection, owned by the server's task
    group, with the connection in owned mode; the connection is closed when
    the handler returns. Use blocking (``await serve_websocket(...)``) or with
    ``await tg.start(serve_websocket, handler)``, which returns the bound
    addresses (port 0 picks a free port).
    """
    settings = _settings(subprotocols, receive_bytes, ping_interval, max_message_size, **options)

    async def on_connection(stream: BufferedStream) -> None:
        try:
            ws = await accept_stream(stream, settings)
        except (InvalidHandshake, ProtocolError, LimitExceeded) as exc:
            # Already answered (400, 403, 408, 426, 431, ...) by the HTTP layer or by us.
            settings.logger.info("refused WebSocket handshake: %s", exc)
            return
        async with ws:
            await handler(ws)

    await serve_tcp(
        on_connection,
        host,
        port,
        ssl_context=ssl_context,
        graceful_shutdown=graceful_shutdown,
        task_status=task_status,
    )
