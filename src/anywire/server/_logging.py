"""Log lines of the runner: the access log, addresses, and the CLI's logging setup.

The library never adds handlers: ``anywire.server`` (events, errors) and
``anywire.server.access`` (one line per response) are plain loggers. Only
the CLI configures logging, in :func:`configure_cli_logging`.
"""

from __future__ import annotations

import logging
import sys
import time
from email.utils import formatdate

__all__ = [
    "ACCESS_LOGGER",
    "DateHeader",
    "configure_cli_logging",
    "format_address",
    "log_access",
]

ACCESS_LOGGER = logging.getLogger("anywire.server.access")


def format_address(address: tuple[str, int] | None) -> str:
    """``host:port`` (``[v6]:port`` for IPv6), or ``-`` when unknown."""
    if address is None:
        return "-"
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def log_access(
    client: tuple[str, int] | None, method: str, target: bytes, http_version: str, status: int
) -> None:
    """``127.0.0.1:54321 - "GET /path?q=1 HTTP/1.1" 200`` at INFO on the access logger."""
    if ACCESS_LOGGER.isEnabledFor(logging.INFO):
        ACCESS_LOGGER.info(
            '%s - "%s %s HTTP/%s" %d',
            format_address(client),
            method,
            target.decode("latin-1"),
            http_version,
            status,
        )


class DateHeader:
    """The ``Date`` header value, formatted at most once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def value(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode("ascii")
        return self._value


def configure_cli_logging(level: str, *, access_log: bool) -> None:
    """Log to stderr at ``level`` (the CLI is a program: it may set up handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s: %(message)s"))
    root = logging.getLogger("anywire")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    if not access_log:
        ACCESS_LOGGER.setLevel(logging.WARNING)
