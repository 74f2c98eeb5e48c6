"""The WebSocket opening handshake (RFC 6455 section 4), sans-I/O.

Both sides are plain functions over header lists: the client builds its
request headers and checks the server's answer; the server checks a request
and builds its 101 answer. HTTP itself is done elsewhere (httpx on the
client, :mod:`anywire._http` on the server).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from wsproto.extensions import Extension

from anywire.errors import InvalidHandshake

__all__ = [
    "ClientOffer",
    "Headers",
    "accept_token",
    "check_origin",
    "client_request_headers",
    "header_value",
    "negotiate_extensions",
    "new_key",
    "normalize_headers",
    "parse_client_request",
    "server_response_headers",
    "split_tokens",
    "validate_server_response",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Header lists as anywire passes them around: (lowercase name, value) pairs.
Headers = list[tuple[str, str]]
HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]


def new_key() -> str:
    """A fresh random ``Sec-WebSocket-Key``."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_token(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value the server must answer to ``key``."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def normalize_headers(headers: HeadersLike | None) -> Headers:
    """Turn a dict or a list of str/bytes pairs into lowercase-name str pairs."""
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    result: Headers = []
    for name, value in items:
        n = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        v = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        result.append((n.lower(), v))
    return result


def header_value(headers: Headers, name: str) -> str | None:
    """All values of header ``name`` joined by commas, or None when absent."""
    values = [v for n, v in headers if n == name]
    return ", ".join(values) if values else None


def split_tokens(value: str | None) -> list[str]:
    """Split a comma-separated header value into stripped, non-empty items."""
    if not value:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def _has_token(headers: Headers, name: str, token: str) -> bool:
    return token in (t.lower() for t in split_tokens(header_value(headers, name)))


def client_request_headers(
    key: str,
    *,
    subprotocols: Sequence[str] = (),
    extensions: Sequence[Extension] = (),
    extra_headers: Sequence[tuple[str, str]] = (),
) -> Headers:
    """The headers of the client's upgrade request (Host is added by httpx)."""
    headers: Headers = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", key),
        ("sec-websocket-version", "13"),
    ]
    if subprotocols:
        headers.append(("sec-websocket-protocol", ", ".join(subprotocols)))
    offers = [_extension_offer(ext) for ext in extensions]
    if offers:
        headers.append(("sec-websocket-extensions", ", ".join(offers)))
    return headers + list(extra_headers)


def _extension_offer(ext: Extension) -> str:
    offer = ext.offer()
    if offer is True or offer == "":
        return ext.name
    return f"{ext.name}; {offer}"


def validate_server_response(
    key: str,
    headers: Headers,
    *,
    subprotocols: Sequence[str],
    extensions: Sequence[Extension],
) -> tuple[str | None, list[Extension]]:
    """Check a 101 response; return the subprotocol and the accepted extensions."""
    if not _has_token(headers, "connection", "upgrade"):
        raise InvalidHandshake("missing 'Connection: Upgrade' in the response")
    if not _has_token(headers, "upgrade", "websocket"):
        raise InvalidHandshake("missing 'Upgrade: websocket' in the response")
    if header_value(headers, "sec-websocket-accept") != accept_token(key):
        raise InvalidHandshake("wrong Sec-WebSocket-Accept in the response")
    subprotocol = header_value(headers, "sec-websocket-protocol")
    if subprotocol is not None and subprotocol not in subprotocols:
        raise InvalidHandshake(f"server chose subprotocol {subprotocol!r}, which was not offered")
    return subprotocol, _finalize_extensions(headers, extensions)


def _finalize_extensions(headers: Headers, extensions: Sequence[Extension]) -> list[Extension]:
    accepted: list[Extension] = []
    for item in split_tokens(header_value(headers, "sec-websocket-extensions")):
        name = item.split(";", 1)[0].strip()
        ext = next((e for e in extensions if e.name == name), None)
        if ext is None or ext in accepted:
            raise InvalidHandshake(f"server accepted extension {name!r}, which was not offered")
        try:
            ext.finalize(item)
        except Exception as exc:
            raise InvalidHandshake(f"invalid extension response {item!r}: {exc}") from exc
        accepted.append(ext)
    return accepted


@dataclass(frozen=True)
class ClientOffer:
    """What a valid client upgrade request asked for."""

    key: str
    subprotocols: list[str] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)
    origin: str | None = None
    host: str | None = None


def parse_client_request(
    method: str, headers: Headers, *, http_version: str = "1.1"
) -> ClientOffer:
    """Validate an upgrade request; raise InvalidHandshake with the status to send.

    The status is in ``status_code``: 400 for a bad request, 426 for a
    version other than 13 (the caller adds ``Sec-WebSocket-Version: 13``).
    """
    if method != "GET":
        raise InvalidHandshake("a WebSocket upgrade must use GET", status_code=400)
    if http_version == "1.0":  # RFC 6455 4.2.1; RFC 9110 7.8 ignores Upgrade in 1.0
        raise InvalidHandshake("a WebSocket upgrade needs HTTP/1.1", status_code=400)
    if _has_body(headers):
        raise InvalidHandshake("a WebSocket upgrade request has no body", status_code=400)
    if not _has_token(headers, "connection", "upgrade"):
        raise InvalidHandshake("missing 'Connection: Upgrade' header", status_code=400)
    if not _has_token(headers, "upgrade", "websocket"):
        raise InvalidHandshake("missing 'Upgrade: websocket' header", status_code=400)
    if header_value(headers, "sec-websocket-version") != "13":
        raise InvalidHandshake("unsupported Sec-WebSocket-Version (use 13)", status_code=426)
    key = header_value(headers, "sec-websocket-key") or ""
    if not _valid_key(key):
        raise InvalidHandshake("missing or invalid Sec-WebSocket-Key", status_code=400)
    return ClientOffer(
        key=key,
        subprotocols=split_tokens(header_value(headers, "sec-websocket-protocol")),
        extensions=split_tokens(header_value(headers, "sec-websocket-extensions")),
        origin=header_value(headers, "origin"),
        host=header_value(headers, "host"),
    )


def _has_body(headers: Headers) -> bool:
    if header_value(headers, "transfer-encoding") is not None:
        return True
    length = header_value(headers, "content-length")
    return length is not None and length.strip() not in ("", "0")


def _valid_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False


def check_origin(offer: ClientOffer, allowed: str | Sequence[str] | None) -> bool:
    """Whether the request's Origin may open a WebSocket.

    ``None`` (the default) means same origin: a request without Origin (not a
    browser) passes; a browser's Origin must name the Host it connects to.
    ``"*"`` allows every origin; a list allows exactly those origins.
    """
    if allowed == "*":
        return True
    if offer.origin is None:
        return True
    if allowed is None:
        netloc = urlsplit(offer.origin).netloc
        return bool(netloc) and netloc.lower() == (offer.host or "").lower()
    allowed_list = [allowed] if isinstance(allowed, str) else list(allowed)
    return offer.origin.rstrip("/") in (a.rstrip("/") for a in allowed_list)


def negotiate_extensions(
    offers: Sequence[str], supported: Sequence[Extension]
) -> tuple[str | None, list[Extension]]:
    """Accept, per extension name, the first acceptable offer (RFC 7692 5.1)."""
    parts: list[str] = []
    accepted: list[Extension] = []
    for offer in offers:
        name = offer.split(";", 1)[0].strip()
        ext = next((e for e in supported if e.name == name), None)
        if ext is None or ext in accepted:
            continue
        response = ext.accept(offer)
        if response is None or response is False:
            continue
        parts.append(name if response is True or response == "" else f"{name}; {response}")
        accepted.append(ext)
    return (", ".join(parts) if parts else None), accepted


def server_response_headers(
    offer: ClientOffer,
    *,
    subprotocol: str | None,
    extensions_header: str | None,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> Headers:
    """The headers of the server's 101 answer."""
    headers: Headers = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-accept", accept_token(offer.key)),
    ]
    if subprotocol is not None:
        headers.append(("sec-websocket-protocol", subprotocol))
    if extensions_header is not None:
        headers.append(("sec-websocket-extensions", extensions_header))
    return headers + list(extra_headers)
