"""Errors of the Engine.IO core, leaves of :mod:`anywire.errors`.

::

    AnywireError
    ├── LimitExceeded
    │   └── QueueFull            the outgoing queue of a session hit its bound
    ├── ProtocolError
    │   └── RemoteProtocolError
    │       └── PacketError      bytes that are no Engine.IO packet or payload ("parse error")
    │           └── PayloadTooLarge   ... longer than ``maxPayload`` (hint 413)
    ├── PingTimeout              the peer's heartbeat stopped
    └── SessionClosed            sending on a session that has ended
"""

from __future__ import annotations

from anywire.errors import AnywireError, LimitExceeded, RemoteProtocolError

__all__ = ["PacketError", "PayloadTooLarge", "PingTimeout", "QueueFull", "SessionClosed"]


class PacketError(RemoteProtocolError):
    """The peer sent something that is not an Engine.IO packet or payload.

    The reference server calls this a "parse error"; the session ends with the
    reason "transport error". ``hint`` is 400, the status for an HTTP request.
    """

    def __init__(self, message: str, *, hint: int | None = 400) -> None:
        super().__init__(message, hint=hint)


class PayloadTooLarge(PacketError):
    """A payload or frame is longer than ``maxPayload`` bytes; ``limit`` is that bound."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload of {size} bytes exceeds maxPayload {limit}", hint=413)
        self.limit = limit


class QueueFull(LimitExceeded):
    """A session's outgoing queue reached ``max_queue`` packets or ``max_queue_bytes``.

    The peer does not read fast enough: the session ends with "transport error".
    """


class PingTimeout(AnywireError):
    """The heartbeat stopped: no PONG (server side) or no PING (client side) in time."""


class SessionClosed(AnywireError):
    """The session has ended; ``reason`` says why ("server disconnect", ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the session is closed ({reason})")
        self.reason = reason
