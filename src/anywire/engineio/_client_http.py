"""The HTTP side of the Engine.IO client: settings, URLs, polling requests, WebSocket opening.

Every request and the WebSocket upgrade go through the one ``httpx.AsyncClient``
of the client object (TLS, proxy, cookies and headers: one configuration).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import httpx

from anywire.engineio._errors import (
    ConnectionLost,
    InvalidResponse,
    ServerUnreachable,
    UnexpectedStatus,
)
from anywire.engineio._packets import DEFAULT_JSON, Handshake, JsonModule, Transport
from anywire.errors import ConnectFailed, HandshakeRejected, InvalidHandshake
from anywire.websocket import WebSocket
from anywire.websocket import connect as ws_connect

__all__ = ["LinkSettings", "open_websocket", "poll_timeout", "request"]

_MiB: Final = 1024 * 1024
_POLLING, _WEBSOCKET = Transport.POLLING, Transport.WEBSOCKET
_CONTENT_TYPE: Final = {"content-type": "text/plain;charset=UTF-8"}
_MAX_ERROR_BODY: Final = 64 * 1024

#: websocket_extra_options that are ours to set (one httpx configuration for everything).
_RESERVED_WS_OPTIONS: Final = frozenset({"http_client", "ssl_context", "proxy", "reconnect"})


@dataclass(frozen=True, kw_only=True)
class LinkSettings:
    """What every session of one client connection shares."""

    url: str
    engineio_path: str = "engine.io"
    headers: Mapping[str, str] = field(default_factory=dict)
    transports: tuple[Transport, ...] = (_POLLING, _WEBSOCKET)
    request_timeout: float = 5.0
    timestamp_requests: bool = True
    json: JsonModule = DEFAULT_JSON
    websocket_options: Mapping[str, Any] = field(default_factory=dict)
    max_queue: int = 1024
    max_queue_bytes: int = 16 * _MiB
    max_poll_bytes: int = 16 * _MiB
    #: The proxy of the client's own httpx client (for error messages only).
    proxy: str | None = None
    logger: logging.Logger = logging.getLogger("anywire.engineio.client")

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"not an http(s) or ws(s) URL: {self.url!r}")
        if not self.transports:
            raise ValueError("no valid transports provided")
        reserved = _RESERVED_WS_OPTIONS & set(self.websocket_options)
        if reserved:
            raise TypeError(f"websocket_extra_options cannot set {sorted(reserved)}")

    def endpoint(self, transport: Transport, sid: str | None = None) -> str:
        """The URL of a request: ``/engine.io/?<query>&transport=...&EIO=4[&sid=][&t=]``."""
        parts = urlsplit(self.url)
        secure = parts.scheme in ("https", "wss")
        scheme = ("https" if secure else "http") if transport is _POLLING else "ws"
        if transport is _WEBSOCKET and secure:
            scheme = "wss"
        query = [parts.query] if parts.query else []
        query += [f"transport={transport.value}", "EIO=4"]
        if sid is not None:
            query.append(f"sid={sid}")
        if self.timestamp_requests:
            query.append(f"t={time.time()}")
        path = "/" + self.engineio_path.strip("/") + "/"
        return urlunsplit((scheme, parts.netloc, path, "&".join(query), ""))


def poll_timeout(settings: LinkSettings, method: str, handshake: Handshake | None) -> httpx.Timeout:
    """``request_timeout``; a poll is parked until the server has something, at most
    about one ping interval, so its read may take pingInterval + pingTimeout more."""
    timeout = settings.request_timeout
    if method != "GET" or handshake is None:
        return httpx.Timeout(timeout)
    read = handshake.ping_interval + handshake.ping_timeout + timeout
    return httpx.Timeout(timeout, read=read)


async def request(
    http: httpx.AsyncClient,
    settings: LinkSettings,
    method: str,
    url: str,
    body: bytes | None,
    handshake: bool,
    timeout: httpx.Timeout,
) -> bytes:
    """One polling request; returns the body of a 200 response (at most ``max_poll_bytes``).

    During the handshake, errors are :class:`ServerUnreachable` and
    :class:`UnexpectedStatus`; later, httpx's own errors and :class:`ConnectionLost`.
    """
    headers = dict(settings.headers)
    if body is not None:
        headers.update(_CONTENT_TYPE)
    try:
        async with http.stream(
            method, url, headers=headers, content=body, timeout=timeout
        ) as response:
            if response.status_code != 200:
                raise await _status_error(response, settings, handshake)
            return await _read_bounded(response, settings.max_poll_bytes)
    except httpx.TransportError as exc:
        if not handshake:
            raise
        raise ServerUnreachable(f"could not connect to {settings.url}: {exc!r}") from exc


async def _status_error(
    response: httpx.Response, settings: LinkSettings, handshake: bool
) -> Exception:
    status = response.status_code
    body = await _read_bounded(response, _MAX_ERROR_BODY, truncate=True)
    if not handshake:
        return ConnectionLost(f"HTTP {status} from the server", status_code=status)
    return UnexpectedStatus(
        f"Unexpected status code {status} in server response",
        _error_data(body, settings.json),
        status_code=status,
        headers=list(response.headers.items()),
        body=body,
    )


async def open_websocket(http: httpx.AsyncClient, settings: LinkSettings, url: str) -> WebSocket:
    """Open a WebSocket (pull mode) through ``http``, with the client's headers and options."""
    options: dict[str, Any] = {"close_timeout": 1.0, **settings.websocket_options}
    extra = options.pop("headers", None) or {}
    headers = {**settings.headers, **dict(extra)}
    connect = ws_connect(url, headers=headers, http_client=http, **options)
    try:
        return await connect.open()
    except ConnectFailed as exc:  # its cause is httpx's error, as for a polling request
        raise ServerUnreachable(str(exc)) from exc.__cause__ or exc
    except HandshakeRejected as exc:
        raise UnexpectedStatus(
            f"Unexpected status code {exc.status_code} in server response{_hint(settings, url)}",
            _error_data(exc.body, settings.json),
            status_code=exc.status_code,
            headers=exc.headers,
            body=exc.body,
        ) from exc
    except InvalidHandshake as exc:
        raise InvalidResponse(str(exc)) from exc


def _hint(settings: LinkSettings, url: str) -> str:
    if settings.proxy is None or not url.startswith("ws:"):
        return ""
    return " (a forward proxy cannot carry a plain ws:// upgrade: use https, or polling)"


async def _read_bounded(response: httpx.Response, limit: int, *, truncate: bool = False) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            if truncate:
                return bytes(body[:limit])
            raise ConnectionLost(f"a polling response longer than {limit} bytes")
    return bytes(body)


def _error_data(body: bytes, json: JsonModule) -> Any:
    """What a refusal says: its JSON if it is JSON, else its text (None if empty)."""
    if not body:
        return None
    text = body.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except (ValueError, RecursionError, TypeError):
        return text
