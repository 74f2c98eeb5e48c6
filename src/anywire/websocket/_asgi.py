"""A WebSocket over ASGI messages, for apps hosted by any ASGI server.

Under a foreign ASGI server (uvicorn, hypercorn) the host parses frames,
answers pings and enforces its own size limits; this adapter maps the ASGI
``websocket.*`` messages to the same API as :class:`WebSocket`.
``max_message_size`` is checked on each message the host delivers (after the
host buffered it); ``ping_interval``, ``latency`` and compression settings are
the host's. Under anywire's own runner, :func:`accept_asgi` gets the full
driver instead, through the ``anywire.websocket`` scope extension.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from anywire._asgi import Message, Receive, Send
from anywire.errors import (
    ConcurrencyError,
    InvalidHandshake,
)
from anywire.websocket._common import MessageSource
from anywire.websocket._handshake import ClientOffer, header_value, normalize_headers

if TYPE_CHECKING:
    from anywire.websocket._connection import WebSocket
    from anywire.websocket._server import ASGIScope, ServerSettings

__all__ = ["NATIVE_EXTENSION", "ASGIWebSocket", "NativeAccept", "accept_asgi"]

#: ``scope["extensions"]["anywire.websocket"]["accept"]``: ``(subprotocol, extra
#: headers, settings, ws_class) -> WebSocket``, the handshake done by the runner.
NativeAccept = Callable[
    [str | None, Sequence[tuple[str, str]], "ServerSettings", "type[WebSocket] | None"],
    Awaitable["WebSocket"],
]


class ASGIWebSocket(MessageSource):
    """A WebSocket accepted through ASGI ``receive``/``send`` callables."""

    latency = 0.0

    def __init__(
        self,
        scope: Mapping[str, Any],
        receive: Receive,
        send: Send,
        *,
        subprotocol: str | None,
        max_message_size: int | None,
    ) -> None:
        self.scope = scope
        self.subprotocol = subprotocol
        self.max_message_size = max_message_size
        self.path: str = scope.get("path", "/")
        self.request_headers = normalize_headers(scope.get("headers", []))
        self._receive = receive
        self._send = send
        self._close_info: tuple[int, str] | None = None
        self._receiving = False

    @property
    def connected(self) -> bool:
        return self._close_info is None

    @property
    def close_code(self) -> int | None:
        return self._close_info[0] if self._close_info else None

    @property
    def close_reason(self) -> str | None:
        return self._close_info[1] if self._close_info else None

    async def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary (bytes-like) message."""
        if self._close_info is not None:
            raise self._closed_error()
        if isinstance(data, str):
            message: dict[str, Any] = {"type": "websocket.send", "text": data}
        elif isinstance(data, bytes | bytearray | memoryview):
            message = {"type": "websocket.send", "bytes": bytes(data)}
        else:
            raise TypeError(f"send() takes str or bytes, not {type(data).__name__}")
        await self._host_send(message)

    async def receive(self, timeout: float | None = None) -> str | bytes | None:
        """The next message; ``None`` if ``timeout`` seconds pass first."""
        if self._receiving:
            raise ConcurrencyError("another task is already waiting in receive()")
        self._receiving = True
        try:
            if timeout is None:
                return await self._next_message()
            with anyio.move_on_after(timeout):
                return await self._next_message()
            return None
        finally:
            self._receiving = False

    async def close(self, reason: int | None = None, message: str | None = None) -> None:
        """Close with code ``reason`` (default 1000) and ``message``."""
        if self._close_info is not None:
            return
        code = 1000 if reason is None else reason
        self._close_info = (code, message or "")
        # If the host already knows the client is gone, it may refuse the message.
        with contextlib.suppress(Exception):
            await self._send({"type": "websocket.close", "code": code, "reason": message or ""})

    async def __aenter__(self) -> ASGIWebSocket:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: Any) -> None:
        code = 1000 if exc_type is None else 1011
        with anyio.CancelScope(shield=True):
            await self.close(code)

    def __repr__(self) -> str:
        state = "open" if self.connected else "closed"
        return f"<ASGIWebSocket {state} subprotocol={self.subprotocol!r}>"

    async def _next_message(self) -> str | bytes:
        if self._close_info is not None:
            raise self._closed_error()
        message = await self._receive()
        kind = message.get("type")
        if kind == "websocket.disconnect":
            self._close_info = (int(message.get("code", 1005)), str(message.get("reason") or ""))
            raise self._closed_error()
        if kind != "websocket.receive":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        data: str | bytes = (
            message["text"] if message.get("text") is not None else message.get("bytes") or b""
        )
        limit = self.max_message_size
        if limit is not None and len(data) > limit:
            await self.close(1009, f"message larger than {limit}")
            raise self._closed_error()
        return data

    async def _host_send(self, message: Message) -> None:
        try:
            await self._send(message)
        except OSError as exc:
            self._close_info = self._close_info or (1006, "connection lost")
            raise self._closed_error() from exc


#: The scope extension anywire's own runner puts in every ``websocket`` scope.
NATIVE_EXTENSION = "anywire.websocket"


async def accept_asgi(
    asgi: ASGIScope, settings: ServerSettings, *, ws_class: type[WebSocket] | None = None
) -> ASGIWebSocket | WebSocket:
    """Answer the ASGI ``websocket.connect`` message and return the connection.

    Under anywire's runner (the scope has the ``anywire.websocket``
    extension) the runner does the handshake with ``settings`` and hands over
    the full driver, a :class:`WebSocket` in pull mode; under any other
    server the result is an :class:`ASGIWebSocket` over ASGI messages.
    """
    scope, receive, send = asgi
    if scope.get("type") != "websocket":
        raise TypeError(f"accept(asgi=...) needs a websocket scope, not {scope.get('type')!r}")
    message = await receive()
    if message.get("type") != "websocket.connect":
        raise InvalidHandshake(f"expected websocket.connect, got {message.get('type')!r}")
    subprotocol = await _choose(scope, send, settings)
    native = (scope.get("extensions") or {}).get(NATIVE_EXTENSION)
    if native is not None:
        accept: NativeAccept = native["accept"]
        return await accept(subprotocol, settings.extra_headers, settings, ws_class)
    accept_msg: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
    if settings.extra_headers:
        accept_msg["headers"] = [(n.encode(), v.encode()) for n, v in settings.extra_headers]
    await send(accept_msg)
    return ASGIWebSocket(
        scope,
        receive,
        send,
        subprotocol=subprotocol,
        max_message_size=settings.options.max_message_size,
    )


async def _choose(scope: Mapping[str, Any], send: Send, settings: ServerSettings) -> str | None:
    """Check the origin (refusing with 1008, which hosts turn into 403) and pick a subprotocol."""
    from anywire.websocket._server import choose_subprotocol

    headers = normalize_headers(scope.get("headers", []))
    offer = ClientOffer(
        key="",
        subprotocols=list(scope.get("subprotocols") or []),
        origin=header_value(headers, "origin"),
        host=header_value(headers, "host"),
    )
    try:
        return choose_subprotocol(offer, scope.get("path", "/"), headers, settings)
    except InvalidHandshake:
        await send({"type": "websocket.close", "code": 1008, "reason": "origin not allowed"})
        raise
