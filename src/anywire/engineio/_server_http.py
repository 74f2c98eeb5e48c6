"""HTTP helpers of the Engine.IO server: environ, CORS, cookie, compression, responses."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from anywire._asgi import Message, Receive, Send

__all__ = [
    "ERRORS",
    "Send",
    "allowed_origin",
    "compress",
    "cookie_header",
    "cors_headers",
    "error_body",
    "make_environ",
    "query_of",
    "send_response",
]

OriginsSetting = str | Sequence[str] | Callable[..., Any] | None

#: The reference's request errors (``engine.io`` ``Server.errors``).
ERRORS: dict[str, tuple[int, str]] = {
    "UNKNOWN_TRANSPORT": (0, "Transport unknown"),
    "UNKNOWN_SID": (1, "Session ID unknown"),
    "BAD_HANDSHAKE_METHOD": (2, "Bad handshake method"),
    "BAD_REQUEST": (3, "Bad request"),
    "FORBIDDEN": (4, "Forbidden"),
    "UNSUPPORTED_PROTOCOL_VERSION": (5, "Unsupported protocol version"),
}


def error_body(name: str) -> tuple[int, bytes]:
    """Status and JSON body of a request error, as the reference answers it."""
    code, message = ERRORS[name]
    status = 403 if name == "FORBIDDEN" else 400
    return status, json.dumps({"code": code, "message": message}).encode()


def query_of(scope: Mapping[str, Any]) -> dict[str, str]:
    """The query parameters (the first value of each), as ``parse_qs`` reads them."""
    raw: bytes = scope.get("query_string", b"")
    if b"%" in raw or b"+" in raw:  # escapes: let the standard library decode them
        text = raw.decode("latin-1")
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    query: dict[str, str] = {}
    for item in raw.decode("latin-1").split("&"):
        if item:
            key, _, value = item.partition("=")
            query.setdefault(key, value)
    return query


def header(scope: Mapping[str, Any], name: str) -> str | None:
    """The first value of header ``name`` (lowercase; ASGI hosts send lowercase names)."""
    key = name.encode()
    size = len(key)
    for k, v in scope.get("headers", ()):
        if len(k) == size and (k == key or k.lower() == key):
            return str(v.decode("latin-1"))
    return None


def make_environ(
    scope: Mapping[str, Any], receive: Receive, send: Send, body: bytes = b""
) -> dict[str, Any]:
    """A WSGI-style environ from an ASGI scope, as python-engineio's ASGI driver builds it."""
    import io

    environ: dict[str, Any] = {
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": {"wss": "https", "ws": "http"}.get(
            scope.get("scheme", "http"), scope.get("scheme", "http")
        ),
        "REQUEST_METHOD": scope.get("method", "GET"),
        "PATH_INFO": scope.get("path", "/"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "RAW_URI": scope.get("raw_path", b"").decode("latin-1") or scope.get("path", "/"),
        "SCRIPT_NAME": scope.get("root_path", ""),
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "REMOTE_ADDR": (scope.get("client") or ("127.0.0.1", 0))[0],
        "REMOTE_PORT": str((scope.get("client") or ("", 0))[1]),
        "SERVER_NAME": "anywire",
        "SERVER_PORT": "0",
        "asgi.scope": scope,
        "asgi.receive": receive,
        "asgi.send": send,
    }
    for name, value in scope.get("headers", []):
        key = name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = text
        elif key == "CONTENT_LENGTH":
            environ["CONTENT_LENGTH"] = text
        else:
            key = "HTTP_" + key
            environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def allowed_origin(
    setting: OriginsSetting, origin: str | None, scope: Mapping[str, Any]
) -> bool | None:
    """Whether ``origin`` may use the server; ``None`` when CORS handling is off (``[]``).

    python-engineio's rules: ``None`` same origin (scheme and Host of the
    request, or its ``X-Forwarded-*``), ``"*"`` any, a string or list exact
    origins, a callable ``f(origin)`` (or ``f(origin, environ)``) decides.
    A request without ``Origin`` is no browser's cross-origin request: allowed.
    """
    if isinstance(setting, list | tuple) and not setting:
        return None
    if origin is None or setting == "*":
        return True
    if callable(setting):
        try:
            return bool(setting(origin))
        except TypeError:
            return bool(setting(origin, make_environ(scope, _no_receive, _no_send)))
    if setting is None:
        return origin in _same_origins(scope)
    allowed = [setting] if isinstance(setting, str) else list(setting)
    return origin.rstrip("/") in (a.rstrip("/") for a in allowed)


async def _no_receive() -> Message:  # pragma: no cover - never called
    return {"type": "http.disconnect"}


async def _no_send(message: Message) -> None:  # pragma: no cover
    return None


def _same_origins(scope: Mapping[str, Any]) -> list[str]:
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), "http")
    if scope.get("scheme") == "https":
        scheme = "https"
    host = header(scope, "host") or ""
    origins = [f"{scheme}://{host}"]
    fwd_host = header(scope, "x-forwarded-host")
    fwd_proto = header(scope, "x-forwarded-proto")
    if fwd_host or fwd_proto:
        origins.append(f"{(fwd_proto or scheme).split(',')[0].strip()}://"
                       f"{(fwd_host or host).split(',')[0].strip()}")  # fmt: skip
    return origins


def cors_headers(
    scope: Mapping[str, Any], origin: str | None, credentials: bool
) -> list[tuple[str, str]]:
    """python-engineio's CORS response headers for an allowed ``origin``."""
    headers: list[tuple[str, str]] = []
    if origin is not None:
        headers.append(("Access-Control-Allow-Origin", origin))
    if scope.get("method") == "OPTIONS":
        headers.append(("Access-Control-Allow-Methods", "OPTIONS, GET, POST"))
    requested = header(scope, "access-control-request-headers")
    if requested:
        headers.append(("Access-Control-Allow-Headers", requested))
    if credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    return headers


def cookie_header(cookie: str | Mapping[str, Any] | None, sid: str) -> tuple[str, str] | None:
    """``Set-Cookie`` for the handshake: a name (``path=/; SameSite=Lax``) or attributes."""
    if not cookie:
        return None
    attrs: dict[str, Any] = (
        {"name": cookie, "path": "/", "SameSite": "Lax"}
        if isinstance(cookie, str)
        else dict(cookie)
    )
    name = attrs.pop("name", "io")
    parts = [f"{name}={sid}"]
    for key, value in attrs.items():
        if callable(value):
            value = value()
        if value is True:
            parts.append(key)
        elif value not in (None, False):
            parts.append(f"{key}={value}")
    return ("Set-Cookie", "; ".join(parts))


def compress(body: bytes, accept_encoding: str | None) -> tuple[bytes, str | None]:
    """gzip or deflate ``body`` per ``Accept-Encoding`` (the first of them listed)."""
    for item in (accept_encoding or "").split(","):
        encoding = item.split(";")[0].strip().lower()
        if encoding == "gzip":
            return gzip.compress(body), "gzip"
        if encoding == "deflate":
            return zlib.compress(body), "deflate"
    return body, None


async def send_response(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[str, str]] = ()
) -> None:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def host_of(url: str) -> str:
    return urlsplit(url).netloc
