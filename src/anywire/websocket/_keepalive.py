"""Keep-alive timing for a WebSocket connection, sans-I/O (the driver passes the time)."""

from __future__ import annotations

import os
from typing import Literal

__all__ = ["Keepalive"]


class Keepalive:
    """When to send the next ping, and when a missing pong means the peer is gone.

    ``interval`` seconds after the connection opens (and after each answered
    ping) a ping is due; if its pong has not come ``timeout`` seconds after it
    was sent, the connection is dead.
    """

    def __init__(self, interval: float, timeout: float, now: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self.latency = 0.0
        self._next_ping = now + interval
        self._pending: bytes | None = None
        self._sent_at = 0.0

    def deadline(self) -> float:
        """The next time :meth:`due` has something to say."""
        if self._pending is not None:
            return self._sent_at + self.timeout
        return self._next_ping

    def due(self, now: float) -> Literal["ping", "timeout"] | None:
        """What to do now: send a ping, give up on the peer, or nothing."""
        if self._pending is not None:
            return "timeout" if now >= self._sent_at + self.timeout else None
        return "ping" if now >= self._next_ping else None

    def ping_sent(self, now: float) -> bytes:
        """Record a ping sent now; return the payload to send with it."""
        self._pending = os.urandom(4)
        self._sent_at = now
        return self._pending

    def pong_received(self, payload: bytes, now: float) -> None:
        """Record a pong; an unsolicited or stale one is ignored."""
        if self._pending is None or bytes(payload) != self._pending:
            return
        self.latency = now - self._sent_at
        self._pending = None
        self._next_ping = self._sent_at + self.interval
