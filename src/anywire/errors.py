"""The one exception hierarchy of anywire.

Every error anywire raises on purpose derives from :class:`AnywireError`.
Cancellation and anyio's own stream exceptions are never wrapped: they keep
their meaning (``anyio.ClosedResourceError``: *we* closed it; an
``anyio.BrokenResourceError``: the peer or the network did).

::

    AnywireError
    ├── ConcurrencyError            two tasks used a one-task operation at once
    ├── LimitExceeded               a configured bound was hit
    │   └── DelimiterNotFound       read_until() read max_bytes without the delimiter
    ├── ProtocolError               bytes on the wire broke a protocol
    │   ├── LocalProtocolError      ... and it was ours (a bug, or misuse of the API)
    │   └── RemoteProtocolError     ... and it was the peer's
    ├── HandshakeError              an opening handshake failed
    │   ├── ConnectFailed           the server could not be reached (DNS, refused, TLS)
    │   ├── InvalidHandshake        the request/response was not a valid upgrade
    │   └── HandshakeRejected       the server answered with a non-101 status
    ├── ConnectionClosed            the connection is closed; ``reason`` and ``message``
    │   ├── ConnectionClosedOK      ... with 1000, 1001 or no code (1005)
    │   └── ConnectionClosedError   ... with any other code (1006: no close frame)
    └── ReconnectGaveUp             the reconnect policy stopped retrying

Names kept for users of the seed libraries are aliases re-exported by the
package that owns them (``anywire.websocket.ConnectionError`` is
:class:`HandshakeError`).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AnywireError",
    "ConcurrencyError",
    "ConnectFailed",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DelimiterNotFound",
    "HandshakeError",
    "HandshakeRejected",
    "InvalidHandshake",
    "LimitExceeded",
    "LocalProtocolError",
    "ProtocolError",
    "ReconnectGaveUp",
    "RemoteProtocolError",
]


class AnywireError(Exception):
    """Root of every exception anywire raises on purpose."""


class ConcurrencyError(AnywireError, RuntimeError):
    """Two tasks called an operation that only one task may run at a time.

    For example two concurrent ``receive()`` calls on one WebSocket.
    """


class LimitExceeded(AnywireError):
    """A configured limit (size, count, queue length) was reached.

    ``limit`` is the configured bound, when there is one number to report.
    """

    def __init__(self, message: str, *, limit: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit


class DelimiterNotFound(LimitExceeded):
    """``read_until()`` saw ``max_bytes`` bytes without finding the delimiter.

    The bytes already read stay buffered in the stream, so the caller can
    still read them with ``read()`` or close the stream.
    """


class ProtocolError(AnywireError):
    """Data on the wire violated a protocol.

    ``hint`` is a suggested status for the reply when there is one: an HTTP
    status (400, 431, ...) or a WebSocket close code (1002, 1007, 1009, ...).
    """

    def __init__(self, message: str, *, hint: int | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class LocalProtocolError(ProtocolError):
    """We were about to break the protocol (a bug, or misuse of the API)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol."""


class HandshakeError(AnywireError):
    """An opening handshake (WebSocket upgrade, Engine.IO open, ...) failed.

    ``status_code``, ``headers`` and ``body`` describe the HTTP response when
    one was received (``status_code`` is ``None`` otherwise).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers = list(headers)
        self.body = body


class ConnectFailed(HandshakeError):
    """The server could not be reached: DNS failure, refused connection, TLS error.

    The underlying error is attached as ``__cause__``.
    """


class InvalidHandshake(HandshakeError):
    """The handshake request or response was not a valid upgrade."""


class HandshakeRejected(HandshakeError):
    """The server refused the upgrade with a non-101 status."""


class ConnectionClosed(AnywireError):
    """The connection is closed.

    ``reason`` is the close code (an ``int``, as simple-websocket names it),
    ``message`` the close reason text. ``code`` is an alias of ``reason``.
    A connection that ended without a close frame has code 1006.
    """

    def __init__(self, reason: int = 1000, message: str = "") -> None:
        super().__init__(f"connection closed: {reason} {message}".rstrip())
        self.reason = reason
        self.message = message

    @property
    def code(self) -> int:
        """The close code (same as ``reason``)."""
        return self.reason

    @staticmethod
    def for_code(code: int, message: str = "") -> ConnectionClosed:
        """Build the subclass that fits ``code``."""
        if code in (1000, 1001, 1005):
            return ConnectionClosedOK(code, message)
        return ConnectionClosedError(code, message)


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed normally: 1000, 1001, or a close frame without a code (1005)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed with an error code, or without a close frame (1006)."""


class ReconnectGaveUp(AnywireError):
    """The reconnect policy stopped retrying.

    ``attempts`` is how many connection attempts were made; the last error is
    attached as ``__cause__``.
    """

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts
