"""Pure pieces of the HTTP/1.1 server: limits, the request object, checks.

Nothing here does I/O or reads the clock: :mod:`._connection` drives h11 and
the stream, and asks these helpers what a request means and whether to refuse
it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

import h11

__all__ = ["HTTPLimits", "Request"]

#: What a caller may pass as response headers: names and values as str or bytes.
HeaderInput = Iterable[tuple[bytes | str, bytes | str]]


@dataclass(frozen=True, slots=True)
class HTTPLimits:
    """Bounds of one server-side HTTP/1.1 connection.

    ``max_header_bytes``: size of a whole request head (request line and
    header fields); a bigger head is refused with 431.
    ``max_body_size``: bytes of request body a reader may receive; a bigger
    ``Content-Length`` is refused with 413 before any body byte is read, a
    chunked body when it crosses the bound. ``None`` removes the bound.
    ``header_timeout``: seconds to receive a complete request head. On a new
    connection the clock starts at the first :meth:`ServerConnection.next_request`
    call; on a kept-alive connection at the first byte of the next request.
    A head still incomplete at the deadline gets 408 (if some bytes came) or a
    quiet close (if none came).
    ``keep_alive_timeout``: seconds a kept-alive connection may stay idle
    between a response and the first byte of the next request; then it is
    closed quietly.
    ``receive_bytes``: the most bytes asked from the stream in one read.
    ``max_drain_size``: request body bytes left unread by the application that
    are read and discarded to keep the connection alive; a bigger remainder
    closes the connection instead.
    ``close_linger``: seconds spent, when closing after a response, reading
    (and dropping) what the client still sends after our end-of-stream, so
    that a TCP reset does not destroy the response before the client reads it.

    ``None`` timeouts wait forever.
    """

    max_header_bytes: int = 16384
    max_body_size: int | None = 1_048_576
    header_timeout: float | None = 10.0
    keep_alive_timeout: float | None = 5.0
    receive_bytes: int = 65536
    max_drain_size: int = 65536
    close_linger: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "receive_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("max_body_size", "header_timeout", "keep_alive_timeout"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None")
        if self.max_drain_size < 0 or self.close_linger < 0:
            raise ValueError("max_drain_size and close_linger must be >= 0")


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed HTTP request head.

    ``target`` is the request-target exactly as received; ``raw_path`` and
    ``query_string`` split it at the first ``?`` (for an absolute-form target
    the scheme and authority are dropped); ``path`` is ``raw_path``
    percent-decoded as UTF-8, as ASGI wants it. ``http_version`` is ``"1.0"``
    or ``"1.1"``. ``headers`` keep the received order, with lowercased names.
    """

    method: str
    target: bytes
    path: str
    raw_path: bytes
    query_string: bytes
    http_version: str
    headers: tuple[tuple[bytes, bytes], ...]

    def header(self, name: str | bytes) -> str | None:
        """The value of header ``name``, repeated fields joined by ``", "``; None if absent."""
        key = _lower_bytes(name)
        values = [value.decode("latin-1") for field, value in self.headers if field == key]
        return ", ".join(values) if values else None

    def header_tokens(self, name: str | bytes) -> list[str]:
        """The comma-separated tokens of header ``name``, stripped and lowercased."""
        value = self.header(name)
        if value is None:
            return []
        return [token.strip().lower() for token in value.split(",") if token.strip()]

    def is_upgrade(self, protocol: str) -> bool:
        """Whether the request asks to upgrade to ``protocol`` (``Connection: upgrade``).

        ``protocol`` matches an ``Upgrade`` token case-insensitively, with or
        without a ``/version`` suffix.
        """
        if not any(field == b"upgrade" for field, _ in self.headers):
            return False  # the common case, decided without decoding anything
        if "upgrade" not in self.header_tokens("connection"):
            return False
        wanted = protocol.lower()
        return any(token.split("/")[0] == wanted for token in self.header_tokens("upgrade"))

    @property
    def keep_alive(self) -> bool:
        """Whether the client keeps the connection open (HTTP/1.1, no ``Connection: close``)."""
        if self.http_version != "1.1":
            return False
        if not any(field == b"connection" for field, _ in self.headers):
            return True
        return "close" not in self.header_tokens("connection")

    @property
    def content_length(self) -> int | None:
        """The declared body length; None for a chunked body, 0 when nothing is declared."""
        value = None
        for field, field_value in self.headers:
            if field == b"transfer-encoding" and self.header_tokens("transfer-encoding"):
                return None
            if field == b"content-length" and value is None:
                value = field_value
        # h11 has already checked that the field is one run of digits.
        return 0 if value is None else int(value.split(b",")[0])


def _lower_bytes(name: str | bytes) -> bytes:
    return _to_bytes(name).lower()


def build_request(event: h11.Request) -> Request:
    """Turn h11's request event into our :class:`Request` (the version is already checked)."""
    return make_request(
        event.method,
        event.target,  # h11 hands out bytes: no copies needed
        "1.0" if event.http_version == b"1.0" else "1.1",
        # h11 lowercases names the same way; its raw items are a plain list (quicker to walk)
        tuple([(name.lower(), value) for name, value in event.headers.raw_items()]),
    )


def make_request(
    method: bytes, target: bytes, http_version: str, headers: tuple[tuple[bytes, bytes], ...]
) -> Request:
    """The :class:`Request` of a parsed head (``headers`` with lowercased names)."""
    raw_path, query_string = split_target(target)
    path = raw_path.decode("latin-1")
    return Request(
        method=method.decode("ascii"),
        target=target,
        path=unquote(path, errors="replace") if "%" in path else path,
        raw_path=raw_path,
        query_string=query_string,
        http_version=http_version,
        headers=headers,
    )


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Split a request-target into ``(raw_path, query_string)``."""
    if target.startswith(b"/"):
        raw_path, _, query = target.partition(b"?")
        return raw_path, query
    if b"://" in target:
        parts = urlsplit(target)
        return parts.path or b"/", parts.query
    # asterisk-form (OPTIONS *) and authority-form (CONNECT host:port)
    return target, b""


_VERSION_LINE = re.compile(rb"[^ ]+ [^ ]+ HTTP/(\d+)(?:\.(\d+))?\r?\n?")


def version_is_supported(http_version: bytes) -> bool:
    """HTTP/1.0 and 1.x (later 1.x minors are served as 1.1, RFC 9110 section 2.5)."""
    return http_version.startswith(b"1.")


def status_for_bad_head(first_line: bytes, h11_hint: int) -> int:
    """The status for a head h11 could not parse: h11's hint, or 505 for another HTTP version.

    h11 hints 431 (head too long) and 501 (unsupported transfer coding), 400
    otherwise. It only parses ``HTTP/<digit>.<digit>``: ``HTTP/2`` or
    ``HTTP/10.0`` make it raise, so the request line is looked at again here.
    """
    if h11_hint != 400:
        return h11_hint
    match = _VERSION_LINE.fullmatch(first_line)
    if match is not None and match[1] != b"1":
        return 505
    return 400


def refusal_for(
    event: h11.Request, limits: HTTPLimits, received: int | None = None
) -> tuple[int, str] | None:
    """Why a head h11 accepted must still be refused, as ``(status, reason)``.

    ``received``: bytes the head came in, at most (None: unknown). A head
    counts at most twice its raw size (see :func:`head_size`), so a head that
    came in at most half of ``max_header_bytes`` is not measured again.
    """
    if not version_is_supported(event.http_version):
        return 505, "HTTP version not supported"
    small = received is not None and 2 * received <= limits.max_header_bytes
    if not small and head_size(event) > limits.max_header_bytes:
        return 431, "request head too large"
    if event.method == b"CONNECT":
        return 501, "CONNECT is not supported"
    return None


def head_size(event: h11.Request) -> int:
    """Size of the request head, from its parsed form (line ends included).

    At most twice the raw size: each counted line is at most its raw bytes
    plus two (``name: value\\r\\n`` for a raw ``name:value\\n``, 3 bytes or more).
    """
    line = len(event.method) + len(event.target) + len(b"  HTTP/1.1\r\n")
    fields = sum(len(name) + len(value) + 4 for name, value in event.headers)
    return line + fields + 2


def error_response(
    status: int, message: str, headers: HeaderInput = ()
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and plain-text body of a refusal; it always closes the connection."""
    body = f"{status} {reason_phrase(status).decode()}: {message}\n".encode()
    fields = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    fields.extend(encode_headers(headers))
    return fields, body


def encode_headers(headers: HeaderInput) -> list[tuple[bytes, bytes]]:
    """Header fields as bytes (``str`` is encoded as Latin-1, like on the wire)."""
    return [(_to_bytes(name), _to_bytes(value)) for name, value in headers]


def _to_bytes(text: bytes | str) -> bytes:
    return text.encode("latin-1") if isinstance(text, str) else bytes(text)


_REASONS = {int(status): status.phrase.encode() for status in HTTPStatus}


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase of ``status``, or empty for an unknown status."""
    return _REASONS.get(status, b"")


# The fast path of the response head (``response_head``) accepts a subset of what h11
# accepts; anything else goes to h11, which writes it or refuses it.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_FIELD_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?")
_LENGTH = re.compile(rb"[0-9]{1,20}")
#: Header names h11 may reorder (host) or rewrite (framing, keep-alive): left to h11.
_H11_REWRITES = frozenset({b"host", b"connection", b"transfer-encoding"})
#: Header fields seen before: (name, value) -> (declared content-length or -1, line).
#: Applications send the same few fields again and again; bounded, short values only.
_FIELD_LINES: dict[tuple[bytes, bytes], tuple[int, bytes]] = {}
_FIELD_LINES_MAX = 1024
_FIELD_VALUE_MAX = 256


def response_head(
    status: int, headers: Sequence[tuple[bytes, bytes]], body_length: int
) -> bytes | None:
    """The head h11 would write for a kept-alive response to a GET, or None to let h11 do it.

    For a whole response of ``body_length`` bytes: ``content-length`` is
    appended when absent, as :meth:`ServerConnection.send_response` does. The
    bytes are those h11 writes for the same response (tests compare them);
    None when h11 might rewrite, reorder or refuse something: names and
    values outside the plain token/field-value syntax, ``host``,
    ``connection``, ``transfer-encoding``, a ``content-length`` that is not
    one run of digits equal to ``body_length`` (or comes twice), a status
    outside 200-999 or one without a body (204, 304).
    """
    if type(status) is not int or not 200 <= status <= 999 or status in (204, 304):
        return None
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
    has_length = False
    for name, value in headers:
        if type(name) is not bytes or type(value) is not bytes:
            return None
        field = _FIELD_LINES.get((name, value)) or _plain_field(name, value)
        if field is None:
            return None
        declared, line = field
        if declared >= 0:
            if has_length or declared != body_length:
                return None
            has_length = True
        lines.append(line)
    if not has_length:
        lines.append(b"content-length: %d\r\n" % body_length)
    lines.append(b"\r\n")
    return b"".join(lines)


def _plain_field(name: bytes, value: bytes) -> tuple[int, bytes] | None:
    """``(declared content-length or -1, line)`` for a field h11 writes as is, else None."""
    lower = name.lower()
    if lower == b"content-length":
        if not _LENGTH.fullmatch(value):
            return None
        field = (int(value), b"%s: %s\r\n" % (name, value))
    elif lower in _H11_REWRITES or not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
        return None
    else:
        field = (-1, b"%s: %s\r\n" % (name, value))
    if len(value) <= _FIELD_VALUE_MAX:
        if len(_FIELD_LINES) >= _FIELD_LINES_MAX:
            _FIELD_LINES.clear()
        _FIELD_LINES[name, value] = field
    return field


def has_header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bool:
    """Whether ``headers`` hold a field called ``name`` (lowercase bytes)."""
    return any(field.lower() == name for field, _ in headers)


class FirstLine:
    """Keeps the first line of a request head, up to ``limit`` bytes.

    h11 consumes the request line before it rejects it; the connection keeps
    its own copy to tell a foreign HTTP version (505) from garbage (400).
    """

    def __init__(self, initial: bytes | bytearray, limit: int) -> None:
        self._line = bytearray()
        self._limit = limit
        self._complete = False
        self.feed(initial)

    def feed(self, data: bytes | bytearray) -> None:
        """Append received bytes until the line is complete or ``limit`` is reached."""
        if self._complete or not data:
            return
        end = data.find(b"\n")
        if end >= 0:
            data = data[: end + 1]
            self._complete = True
        self._line += data[: self._limit - len(self._line)]

    @property
    def value(self) -> bytes:
        """The bytes kept so far."""
        return bytes(self._line)
