"""Errors of Engine.IO, leaves of :mod:`anywire.errors`.

::

    AnywireError
    ├── EngineIOError                 every Engine.IO error below is one (python-engineio's root)
    ├── LimitExceeded
    │   └── QueueFull                 an outgoing queue hit its bound
    ├── ProtocolError
    │   └── RemoteProtocolError
    │       ├── PacketError           bytes that are no Engine.IO packet or payload ("parse error")
    │       │   └── PayloadTooLarge   ... longer than ``maxPayload`` (hint 413)
    │       └── ConnectionLost        an HTTP error on a poll or POST of an established session
    ├── HandshakeError
    │   └── ClientConnectionError     the client could not connect (seed: ``ConnectionError``)
    │       ├── ServerUnreachable     ... DNS, refused, TLS, timeout (also a ConnectFailed)
    │       ├── UnexpectedStatus      ... the server answered an HTTP error (also HandshakeRejected)
    │       └── InvalidResponse       ... the answer was no Engine.IO handshake (InvalidHandshake)
    ├── PingTimeout                   the peer's heartbeat stopped (also a ``TimeoutError``)
    ├── SessionClosed                 sending on a session that has ended (``SocketIsClosedError``)
    └── QueueEmpty                    ``get_nowait()`` on an empty queue from ``create_queue()``

python-engineio's names are aliases in :mod:`anywire.engineio.exceptions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from anywire.errors import (
    AnywireError,
    ConnectFailed,
    HandshakeError,
    HandshakeRejected,
    InvalidHandshake,
    LimitExceeded,
    RemoteProtocolError,
)

__all__ = [
    "ClientConnectionError",
    "ConnectionLost",
    "EngineIOError",
    "InvalidResponse",
    "PacketError",
    "PayloadTooLarge",
    "PingTimeout",
    "QueueEmpty",
    "QueueFull",
    "ServerUnreachable",
    "SessionClosed",
    "UnexpectedStatus",
]


class EngineIOError(AnywireError):
    """Root of the Engine.IO errors (python-engineio's ``EngineIOError``)."""


class PacketError(RemoteProtocolError, EngineIOError):
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


class QueueFull(LimitExceeded, EngineIOError):
    """An outgoing queue reached its bound (packets or bytes).

    In a session: the peer does not read fast enough, and the session ends
    with "transport error". In a client: more messages were sent while
    disconnected than ``max_queue`` allows.
    """


class PingTimeout(EngineIOError, TimeoutError):
    """The heartbeat stopped: no PONG (server side) or no PING (client side) in time.

    It is a ``TimeoutError`` (an ``OSError``), so the default reconnect policy
    retries after it.
    """


class SessionClosed(EngineIOError):
    """The session has ended; ``reason`` says why ("server disconnect", ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the session is closed ({reason})")
        self.reason = reason


class QueueEmpty(EngineIOError):
    """``get_nowait()`` found the queue empty (python-engineio's ``QueueEmpty``)."""


class ClientConnectionError(EngineIOError, HandshakeError):
    """Connecting to an Engine.IO server failed (python-engineio's ``ConnectionError``).

    As in python-engineio, ``args`` is ``(message,)`` or ``(message, data)``
    where ``data`` is what the server said (its JSON, else its text); also
    ``data``. The underlying error, if any, is ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        data: Any = None,
        *,
        status_code: int | None = None,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        super().__init__(message, status_code=status_code, headers=headers, body=body)
        self.data = data
        if data is not None:
            self.args = (message, data)


class ServerUnreachable(ClientConnectionError, ConnectFailed):
    """The server could not be reached: DNS, refused connection, TLS, timeout."""


class UnexpectedStatus(ClientConnectionError, HandshakeRejected):
    """The server answered with an HTTP error status (a refused connection: 401, 403, ...).

    ``status_code``, ``headers``, ``body`` are the response's; ``data`` its
    JSON (python-engineio's ``AsyncServer`` sends the refusal's data as JSON,
    the node server ``{"code": ..., "message": ...}``) or text.
    """


class InvalidResponse(ClientConnectionError, InvalidHandshake):
    """The server's answer was not an Engine.IO handshake (bad payload, no OPEN packet)."""


class ConnectionLost(RemoteProtocolError, EngineIOError):
    """An established session's transport failed: an HTTP error on a poll or a POST.

    ``status_code`` is the HTTP status, if any. It is a
    :class:`~anywire.errors.RemoteProtocolError`, so the default reconnect policy retries (a
    restarted server answers 400 "Session ID unknown").
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message, hint=status_code)
        self.status_code = status_code
