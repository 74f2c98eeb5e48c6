"""simple-websocket's "Async Context Manager Pattern" example, on anywire.

    python examples/seed_simple_websocket_context_manager.py ws://127.0.0.1:8000/ws
    python examples/seed_simple_websocket_context_manager.py ws://... --style seed --backend trio

The seed wrote a class to close the connection at the end of an ``async with``
block. anywire's ``connect(url)`` is that context manager already
(``--style structured``, the default), and more: the block owns the
connection's reader and keep-alive tasks, and closes with 1000, 1011 when the
body raised, 1001 when it was cancelled. The seed's class still works as
written (``--style seed``).

Run ``examples/seed_simple_websocket_asgi_server.py`` (or the socket server) first.
"""

from __future__ import annotations

import argparse
from types import TracebackType
from typing import Any

import anyio

from anywire import websocket as simple_websocket


async def context_manager_example(url: str = "ws://localhost:8000/ws") -> None:
    async with simple_websocket.connect(url) as ws:
        await ws.send("Hello with context manager!")
        response = await ws.receive()
        print(f"Response: {response}")
    # WebSocket automatically closed when exiting context
    print(f"closed with code {ws.close_code}")


class AsyncWebSocketClient:
    """The seed's wrapper, unchanged but for type hints: no longer needed."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.url = url
        self.kwargs = kwargs
        self.ws: simple_websocket.WebSocket | None = None

    async def __aenter__(self) -> simple_websocket.WebSocket:
        self.ws = await simple_websocket.AioClient.connect(self.url, **self.kwargs)
        return self.ws

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if self.ws:
            await self.ws.close()


async def context_manager_example_seed(url: str = "ws://localhost:8000/ws") -> None:
    async with AsyncWebSocketClient(url) as ws:
        await ws.send("Hello with context manager!")
        response = await ws.receive()
        print(f"Response: {response}")
    # WebSocket automatically closed when exiting context
    print(f"closed with code {ws.close_code}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="ws://localhost:8000/ws")
    parser.add_argument("--style", choices=["structured", "seed"], default="structured")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    example = (
        context_manager_example if args.style == "structured" else (context_manager_example_seed)
    )
    anyio.run(example, args.url, backend=args.backend)
