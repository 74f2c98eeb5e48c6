"""``async with anywire.engineio.connect(url) as client:``: the structured form."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from anywire.engineio._client import AsyncClient
from anywire.engineio._client_utils import Queue

__all__ = ["connect"]


@asynccontextmanager
async def connect(
    url: str,
    headers: Mapping[str, str] | None = None,
    transports: str | Sequence[str] | None = None,
    engineio_path: str = "engine.io",
    *,
    receive_queue: int = 16,
    **options: Any,
) -> AsyncIterator[AsyncClient]:
    """Connect to ``url``; the block owns the connection.

    ``async for message in client`` (or ``await client.receive()``) gives the
    messages, text as ``str`` and binary as ``bytes`` (``decode_json`` is off
    here); ``await client.send(...)``. At most ``receive_queue`` messages wait
    for the reader of the block; then reading from the server pauses.
    ``options`` are :class:`AsyncClient`'s (``reconnect=``, ``request_timeout=``,
    ...). Leaving the block closes cleanly (CLOSE packet, then the
    transport), also when the body raised or was cancelled.
    """
    client = AsyncClient(**{"decode_json": False, **options})
    client._inbox = Queue(max(1, receive_queue))
    async with client:
        await client.connect(url, headers, transports, engineio_path)
        yield client
