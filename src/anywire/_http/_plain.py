"""Plain request heads, parsed without h11: a strict subset of what h11 accepts.

Most requests are a request line and a few ordinary header fields, with the
whole body (if any, by ``Content-Length``) already received. :func:`parse_plain`
reads such a request from the connection's buffer into the :class:`Request` that
:func:`build_request` makes of h11's event for the same bytes (a hypothesis test
compares them); anything else (obsolete line folding, bare ``\\n`` line ends,
``Transfer-Encoding``, ``Expect``, ``Upgrade``, ``CONNECT``, another HTTP version,
a missing or repeated ``Host``, an unusual ``Content-Length``, a big head, a body
not all there) is left to h11, which parses or refuses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from ._request import Request, make_request

__all__ = ["NotPlain", "PlainRequest", "parse_plain"]


class NotPlain(Enum):
    """Why :func:`parse_plain` returned no request."""

    #: The head may still turn out plain: read more and ask again.
    INCOMPLETE = "incomplete"
    #: h11 must parse (or refuse) this one.
    DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class PlainRequest:
    """A request taken whole from the buffer: the head ends at ``head_end``, the body
    (``Content-Length`` bytes) at ``end``."""

    request: Request
    head_end: int
    end: int


_REQUEST_LINE = re.compile(rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+) ([\x21-\x7e]+) HTTP/1\.([01])")
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_LENGTH = re.compile(rb"[0-9]{1,20}")
#: h11's end of a head: the first blank line, whatever the line ends.
_BLANK_LINE = re.compile(rb"\n\r?\n")
#: Header fields that change how h11 frames or switches the request: left to it.
_DECLINED_FIELDS = frozenset({b"transfer-encoding", b"upgrade", b"expect"})
#: Header names seen before (valid tokens) -> lowercased; bounded.
_NAMES: dict[bytes, bytes] = {}
_NAMES_MAX = 512
_NAME_MAX = 64


def parse_plain(buffer: bytearray, max_header_bytes: int, max_body: int) -> PlainRequest | NotPlain:
    """The plain request at the start of ``buffer``, or why there is none (see the module).

    A head bigger than half of ``max_header_bytes`` and a body bigger than
    ``max_body`` are declined (h11's path measures and refuses them).
    """
    found = _BLANK_LINE.search(buffer)
    if found is None:
        if len(buffer) * 2 > max_header_bytes or (buffer and buffer[0] < 0x21):
            return NotPlain.DECLINED  # h11 refuses these without waiting
        return NotPlain.INCOMPLETE
    head_end = found.end()
    if buffer[found.start() - 1 : head_end] != b"\r\n\r\n" or head_end * 2 > max_header_bytes:
        return NotPlain.DECLINED
    head = bytes(buffer[: head_end - 4])
    parsed = _parse_head(head)
    if parsed is None:
        return NotPlain.DECLINED
    request, length = parsed
    end = head_end + length
    if length > max_body or len(buffer) < end:
        return NotPlain.DECLINED
    return PlainRequest(request, head_end, end)


def _parse_head(head: bytes) -> tuple[Request, int] | None:
    """``(request, content length)`` of a head without its final blank line, or None."""
    lines = head.split(b"\r\n")
    breaks = len(lines) - 1
    if (
        head.count(b"\n") != breaks
        or head.count(b"\r") != breaks
        or b"\x00" in head
        or b"\x0b" in head
        or b"\x0c" in head
    ):
        return None  # bare line ends, or bytes h11's field values refuse
    line = _REQUEST_LINE.fullmatch(lines[0])
    if line is None or line[1] == b"CONNECT":
        return None
    fields = _parse_fields(lines)
    if fields is None:
        return None
    headers, hosts, length = fields
    version = "1.1" if line[3] == b"1" else "1.0"
    if hosts > 1 or (hosts == 0 and version == "1.1"):
        return None
    return make_request(line[1], line[2], version, headers), length


def _parse_fields(lines: list[bytes]) -> tuple[tuple[tuple[bytes, bytes], ...], int, int] | None:
    """``(fields, Host fields, content length)`` of the header lines, or None."""
    fields = []
    hosts = 0
    length = -1
    for index in range(1, len(lines)):
        raw_name, colon, value = lines[index].partition(b":")
        if not colon:
            return None
        name = _NAMES.get(raw_name)
        if name is None:
            if _TOKEN.fullmatch(raw_name) is None:
                return None  # also a line folded onto the previous one
            name = _remember(raw_name)
        value = value.strip(b" \t")
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            if length >= 0 or _LENGTH.fullmatch(value) is None:
                return None
            length = int(value)
        elif name in _DECLINED_FIELDS:
            return None
        fields.append((name, value))
    return tuple(fields), hosts, max(length, 0)


def _remember(raw_name: bytes) -> bytes:
    name = raw_name.lower()
    if len(raw_name) <= _NAME_MAX:
        if len(_NAMES) >= _NAMES_MAX:
            _NAMES.clear()
        _NAMES[raw_name] = name
    return name
