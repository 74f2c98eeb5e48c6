"""The seed's helpers of ``AsyncClient``, on anyio: queues, events, background tasks."""

from __future__ import annotations

import enum
import functools
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Generic, TypeVar

import anyio

from anywire.engineio._errors import QueueEmpty, QueueFull
from anywire.engineio._packets import Transport
from anywire.engineio._session import DisconnectReason

__all__ = [
    "SeedUtilities",
    "BackgroundTask",
    "ClientState",
    "Queue",
    "call_handler",
    "ready",
    "reason",
    "transports_of",
]

T = TypeVar("T")


class ClientState(enum.StrEnum):
    """Where a client stands; ``"connected"`` as python-engineio's ``state`` says it."""

    DISCONNECTED = "disconnected"  #: never connected (or reset by ``connect()``)
    CONNECTING = "connecting"  #: the first handshake is running
    CONNECTED = "connected"  #: a session is open
    RECONNECTING = "reconnecting"  #: lost; the reconnect policy is waiting or trying
    CLOSED = "closed"  #: disconnected for good (``connect()`` may start again)


class reason:  # python-engineio's name
    """Disconnection reasons (python-engineio's ``AsyncClient.reason``)."""

    #: Client-initiated disconnection.
    CLIENT_DISCONNECT = DisconnectReason.CLIENT_DISCONNECT
    #: Server-initiated disconnection.
    SERVER_DISCONNECT = DisconnectReason.SERVER_DISCONNECT
    #: Transport error (the heartbeat stopped, the network failed, bad data).
    TRANSPORT_ERROR = DisconnectReason.TRANSPORT_ERROR


class Queue(Generic[T]):
    """What ``create_queue()`` returns: asyncio.Queue's methods, on anyio.

    ``maxsize <= 0`` means unbounded, as in asyncio. ``get_nowait()`` raises
    :class:`QueueEmpty`, ``put_nowait()`` :class:`QueueFull`. After
    :meth:`close`, ``get()`` on an empty queue raises ``anyio.EndOfStream``
    and ``put()`` raises ``anyio.ClosedResourceError``.
    """

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._changed: anyio.Event | None = None  # created on first use: no loop needed here
        self._closed = False

    def __repr__(self) -> str:
        return f"<Queue size={len(self._items)} maxsize={self.maxsize}>"

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def put_nowait(self, item: T) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self.full():
            raise QueueFull(f"the queue holds {self.maxsize} items", limit=self.maxsize)
        self._items.append(item)
        self._notify()

    async def put(self, item: T) -> None:
        while self.full() and not self._closed:
            await self._wait()
        self.put_nowait(item)

    def get_nowait(self) -> T:
        if not self._items:
            if self._closed:
                raise anyio.EndOfStream
            raise QueueEmpty("the queue is empty")
        item = self._items.popleft()
        self._notify()
        return item

    async def get(self) -> T:
        while not self._items and not self._closed:
            await self._wait()
        return self.get_nowait()

    def task_done(self) -> None:
        """Accepted for asyncio.Queue compatibility; does nothing."""

    def close(self) -> None:
        """No more items: waiting getters see the end once the queue is empty."""
        self._closed = True
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()


class BackgroundTask:
    """What ``start_background_task()`` returns: ``cancel()`` it or ``await`` its result.

    The task runs in the client's task group (see the docs: it is owned by the
    ``async with`` block or by the task that calls ``wait()``). What it raises
    is logged, never propagated into the group; ``await task`` re-raises it.
    """

    def __init__(
        self, target: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._call = (target, args, kwargs)
        self._scope = anyio.CancelScope()
        self._finished = anyio.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<BackgroundTask {getattr(self._call[0], '__name__', '?')} {state}>"

    def done(self) -> bool:
        return self._finished.is_set()

    def cancel(self) -> None:
        """Cancel the task (before it started: it never runs)."""
        self._scope.cancel()

    async def run(self, logger: logging.Logger) -> None:
        target, args, kwargs = self._call
        try:
            with self._scope:
                result = target(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
                self._result = result
        except Exception as exc:
            self._error = exc
            logger.exception("background task %r failed", target)
        finally:
            self._finished.set()

    async def wait(self) -> Any:
        """Wait for the end; return the result (None if cancelled) or raise its error."""
        await self._finished.wait()
        if self._error is not None:
            raise self._error
        return self._result

    def __await__(self) -> Generator[Any, None, Any]:
        return self.wait().__await__()


def call_handler(handler: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Call ``handler(*args)``; a handler that takes fewer arguments gets fewer.

    python-engineio calls a ``disconnect`` handler without the reason when it
    does not take one (handlers written before 4.11). Whether a handler takes
    ``len(args)`` arguments is looked up once per handler (``inspect.signature``
    costs more than a small message's whole trip through the server).
    """
    try:
        takes_all = _takes(handler, len(args))
    except TypeError:  # an unhashable callable: not cached
        takes_all = _takes.__wrapped__(handler, len(args))
    return handler(*args) if takes_all or not args else handler(*args[:-1])


@functools.lru_cache(maxsize=256)
def _takes(handler: Callable[..., Any], count: int) -> bool:
    """Whether ``handler`` accepts ``count`` positional arguments (True when it has no
    signature to read, as some builtins: then it is called as is)."""
    try:
        inspect.signature(handler).bind(*range(count))
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def transports_of(transports: str | Sequence[str] | None) -> tuple[Transport, ...]:
    """The ``transports=`` argument as python-engineio reads it (unknown names dropped)."""
    if transports is None:
        return (Transport.POLLING, Transport.WEBSOCKET)
    if isinstance(transports, str):
        transports = [transports]
    valid = tuple(Transport(t) for t in transports if t in ("polling", "websocket"))
    if not valid:
        raise ValueError("No valid transports provided")
    return valid


def ready(link: T) -> Callable[[], Awaitable[T]]:
    """An attempt for ``Reconnector.next_attempt`` that has already succeeded."""

    async def attempt() -> T:
        return link

    return attempt


class SeedUtilities:
    """python-engineio's utility methods, shared by the client and the server."""

    async def sleep(self, seconds: float = 0) -> None:
        """Sleep for ``seconds`` (``anyio.sleep``)."""
        await anyio.sleep(seconds)

    def create_queue(self, maxsize: int = 0) -> Queue[Any]:
        """A queue with asyncio.Queue's methods, for asyncio or trio."""
        return Queue(maxsize)

    def get_queue_empty_exception(self) -> type[QueueEmpty]:
        """The exception ``get_nowait()`` raises on an empty :meth:`create_queue` queue."""
        return QueueEmpty

    def create_event(self) -> anyio.Event:
        """An event (``anyio.Event``: ``set()``, ``is_set()``, ``await wait()``)."""
        return anyio.Event()
