"""Proxy headers: the client address and scheme a trusted reverse proxy reports.

``Forwarded`` (RFC 7239) wins over ``X-Forwarded-For``/``X-Forwarded-Proto``.
Both are read only when the peer (the proxy) is trusted. Each proxy appends
the address it received the request from, so the hops are walked from the
nearest one back; the first untrusted address is the client, and the scheme
is the one reported by that hop. With ``"*"`` everything is trusted and the
first (leftmost) hop is the client. Pure functions: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Hop", "ProxyTrust", "forwarded_hops"]

_SCHEMES = frozenset({"http", "https", "ws", "wss"})
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Hop:
    """One proxy hop: the address it received the request from, and over which scheme."""

    host: str | None
    proto: str | None


class ProxyTrust:
    """Which peers may set proxy headers: ``"*"``, IP addresses, networks, ``"unix:"``.

    ``allow`` is a list or a comma-separated string (uvicorn's
    ``forwarded_allow_ips``). ``"unix:"`` trusts peers on a Unix socket,
    whose address is unknown. Other names are compared literally.
    """

    def __init__(self, allow: str | Sequence[str]) -> None:
        items = allow.split(",") if isinstance(allow, str) else list(allow)
        self._literals: set[str] = set()
        self._networks: list[Network] = []
        for item in (i.strip() for i in items):
            if not item:
                continue
            try:
                self._networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self._literals.add(item)
        self.everyone = "*" in self._literals

    def trusts(self, host: str | None) -> bool:
        """Whether the peer ``host`` (None: a Unix socket peer) is a trusted proxy."""
        if self.everyone:
            return True
        if host is None:
            return "unix:" in self._literals
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host in self._literals
        return any(address in network for network in self._networks)

    def resolve(
        self,
        client: tuple[str, int] | None,
        scheme: str,
        headers: Sequence[tuple[bytes, bytes]],
    ) -> tuple[tuple[str, int] | None, str]:
        """The ``(client, scheme)`` to put in the scope for a request from ``client``."""
        if not self.trusts(client[0] if client else None):
            return client, scheme
        hops = forwarded_hops(headers)
        if self.everyone:
            hops = hops[:1]
        for hop in reversed(hops):
            if hop.proto is not None:
                scheme = hop.proto
            if hop.host is not None:
                client = (hop.host, 0)
            if not self.trusts(hop.host):
                break
        return client, scheme


def forwarded_hops(headers: Sequence[tuple[bytes, bytes]]) -> list[Hop]:
    """The hops described by ``Forwarded``, else by ``X-Forwarded-For``/``-Proto``."""
    forwarded = _joined(headers, b"forwarded")
    if forwarded is not None:
        return [_parse_element(element) for element in _split(forwarded, ",")]
    hosts = [_strip_port(h) for h in _items(_joined(headers, b"x-forwarded-for"))]
    protos = [_scheme(p) for p in _items(_joined(headers, b"x-forwarded-proto"))]
    if not hosts:
        return [Hop(None, protos[-1])] if protos else []
    if len(protos) != len(hosts):
        protos = [protos[-1] if protos else None] * len(hosts)
    return [Hop(host, proto) for host, proto in zip(hosts, protos, strict=True)]


def _joined(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    values = [value.decode("latin-1") for field, value in headers if field == name]
    return ", ".join(values) if values else None


def _items(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _parse_element(element: str) -> Hop:
    """``for=...;proto=...`` (RFC 7239 section 4); unknown parameters are ignored."""
    host: str | None = None
    proto: str | None = None
    for pair in _split(element, ";"):
        key, _, value = pair.partition("=")
        value = value.strip().strip('"')
        key = key.strip().lower()
        if key == "for" and value and not value.startswith("_") and value != "unknown":
            host = _strip_port(value)
        elif key == "proto":
            proto = _scheme(value)
    return Hop(host, proto)


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _strip_port(host: str) -> str:
    """``1.2.3.4:80`` → ``1.2.3.4``; ``[::1]:80`` and ``[::1]`` → ``::1``; ``::1`` stays."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


def _scheme(value: str) -> str | None:
    scheme = value.strip().lower()
    return scheme if scheme in _SCHEMES else None
