"""The seed's handler registry and utilities of ``AsyncClient``, as a base class.

Handlers may be sync or async. ``connect`` and ``disconnect`` handlers run in
the task that opens or loses the connection; a sync ``message`` handler runs in
the reader (in order), an async one as a task of the client's task group, at
most 64 at once (then the reader waits: backpressure), as python-engineio runs
each in a task of its own.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup

from anywire.engineio._client_utils import BackgroundTask, Queue, SeedUtilities, call_handler
from anywire.engineio._packets import JsonModule, decode_message

__all__ = ["EVENTS", "MAX_HANDLER_TASKS", "ClientHandlers", "Handler", "Message"]

EVENTS: Final = ("connect", "disconnect", "message")
MAX_HANDLER_TASKS: Final = 64

Handler = Callable[..., Any]
Message = str | bytes | Any


class ClientHandlers(SeedUtilities):
    """Handlers, messages in and out, background tasks: what ``AsyncClient`` shares with
    python-engineio's API beyond connecting."""

    logger: logging.Logger
    json: JsonModule
    decode_json: bool
    handlers: dict[str, Handler]
    _tg: TaskGroup | None
    _deferred: list[BackgroundTask]
    _inbox: Queue[Message] | None
    _slots: anyio.Semaphore | None

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register ``handler`` for ``'connect'``, ``'message'`` or ``'disconnect'``.

        Without ``handler``, a decorator. Handlers may be sync or async.
        """
        if event not in EVENTS:
            raise ValueError("Invalid event")

        def set_handler(handler: Handler) -> Handler:
            self.handlers[event] = handler
            return handler

        if handler is None:
            return set_handler
        set_handler(handler)
        return None

    def start_background_task(
        self, target: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> BackgroundTask:
        """Run ``target(*args, **kwargs)`` in the client's task group.

        That group is the ``async with`` block's, or the one :meth:`wait` opens:
        a task started before ``wait()`` starts when ``wait()`` does. Returns a
        :class:`BackgroundTask` (``cancel()``, ``await task``).
        """
        task = BackgroundTask(target, args, kwargs)
        if self._tg is not None:
            self._tg.start_soon(task.run, self.logger)
        else:
            self._deferred.append(task)
        return task

    # -- internals --------------------------------------------------------------------

    def _start_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        assert self._tg is not None
        for task in deferred:
            self._tg.start_soon(task.run, self.logger)

    def _encode(self, data: Any) -> str | bytes:
        if isinstance(data, str):
            return data
        if isinstance(data, bytes | bytearray | memoryview):
            return bytes(data)
        if isinstance(data, list | dict):
            text = self.json.dumps(data)
            return text.decode("utf-8") if isinstance(text, bytes) else text
        raise TypeError(f"send() takes str, bytes, list or dict, not {type(data).__name__}")

    def _decode(self, data: str | bytes) -> Message:
        """python-engineio's rule: text that parses as JSON (and starts with no digit)."""
        return decode_message(data, self.json) if self.decode_json else data

    async def _deliver(self, data: str | bytes) -> None:
        message = self._decode(data)
        handler = self.handlers.get("message")
        if handler is None:
            if self._inbox is not None:
                await self._inbox.put(message)
            return
        if inspect.iscoroutinefunction(handler) and self._tg is not None:
            assert self._slots is not None
            await self._slots.acquire()
            self._tg.start_soon(self._run_handler, handler, message)
            return
        try:
            result = handler(message)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.logger.exception("message handler error")

    async def _run_handler(self, handler: Handler, message: Message) -> None:
        assert self._slots is not None
        try:
            await handler(message)
        except Exception:
            self.logger.exception("message async handler error")
        finally:
            self._slots.release()

    async def _fire(self, event: str, *args: Any) -> None:
        handler = self.handlers.get(event)
        if handler is None:
            return
        result = call_handler(handler, args)
        if inspect.isawaitable(result):
            await result
