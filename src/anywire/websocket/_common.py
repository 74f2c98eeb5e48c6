"""What :class:`WebSocket` and :class:`ASGIWebSocket` share: iteration and the close error."""

from __future__ import annotations

from typing import Self

from anywire.errors import ConnectionClosed, ConnectionClosedOK

__all__ = ["MessageSource"]


class MessageSource:
    """``async for message in ws``, over the subclass's ``receive()``.

    The loop ends at a normal close (:exc:`~anywire.errors.ConnectionClosedOK`);
    any other close raises. ``_close_info`` is ``(code, reason)`` once closed.
    """

    _close_info: tuple[int, str] | None

    async def receive(self, timeout: float | None = None) -> str | bytes | None:
        raise NotImplementedError

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            message = await self.receive()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None
        assert message is not None
        return message

    def _closed_error(self) -> ConnectionClosed:
        code, reason = self._close_info or (1006, "")
        return ConnectionClosed.for_code(code, reason)
