"""simple-websocket's "aiohttp Integration" example, on anywire: a WebSocket echo at ``/ws``.

    python examples/seed_simple_websocket_asgi_server.py --port 8000 [--backend trio]
    python examples/seed_simple_websocket_asgi_server.py --port 0     # a free port, printed

aiohttp runs on asyncio only, so the seed's aiohttp handler becomes a plain
ASGI application, served here by anywire's runner (uvicorn or hypercorn work
too). Two routes show the two forms:

* ``/ws``: the structured form we recommend, ``async with accept(asgi=...) as ws:``;
* ``/ws-seed``: the seed's form, ``ws = await AioServer.accept(...)`` with
  ``try``/``finally: await ws.close()``.

Messages arrive as ``str`` (text) or ``bytes`` (binary), not as aiohttp
``WSMessage`` objects, and errors are exceptions, not ``WSMsgType.ERROR``
messages. Text gets ``"Echo: ..."`` back, binary is echoed as is.
Clients: ``examples/seed_simple_websocket_client.py`` and
``examples/seed_simple_websocket_context_manager.py``. Ctrl+C stops the server.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskStatus

from anywire import serve_app
from anywire import websocket as simple_websocket

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def websocket_handler(scope: Scope, receive: Receive, send: Send) -> None:
    """The structured form: leaving the block closes the connection (1000, or 1011 on error)."""
    async with simple_websocket.accept(asgi=(scope, receive, send)) as ws:
        async for message in ws:  # ends when the client closes with 1000 or 1001
            if isinstance(message, str):
                await ws.send(f"Echo: {message}")
            else:
                await ws.send(message)
    print("Client disconnected")


async def websocket_handler_seed(scope: Scope, receive: Receive, send: Send) -> None:
    """The seed's form: accept, then close in ``finally``."""
    ws = await simple_websocket.AioServer.accept(asgi=(scope, receive, send))
    try:
        async for message in ws:
            # Process incoming message
            if isinstance(message, str):
                # Echo message back
                await ws.send(f"Echo: {message}")
            else:
                await ws.send(message)
        print("Client disconnected")
    except simple_websocket.ConnectionClosed as exc:  # any close code but 1000/1001
        print(f"Client disconnected: {exc}")
    finally:
        await ws.close()


ROUTES = {"/ws": websocket_handler, "/ws-seed": websocket_handler_seed}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The seed's ``app.router.add_get('/ws', websocket_handler)``, as an ASGI app."""
    handler = ROUTES.get(scope["path"])
    if scope["type"] == "websocket" and handler is not None:
        await handler(scope, receive, send)
    elif scope["type"] == "http":
        body = b"WebSocket endpoints: /ws and /ws-seed\n"
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"content-length", b"%d" % len(body)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})


async def main(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    async with anyio.create_task_group() as tg:
        info = await tg.start(partial(serve_app, app, host, port, lifespan="off"))
        print(f"listening on ws://{host}:{info.port}/ws", flush=True)
        task_status.started(info.port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    try:  # Ctrl+C cancels the server: a graceful shutdown
        anyio.run(main, args.host, args.port, backend=args.backend)
    except* KeyboardInterrupt:  # trio raises it in an exception group
        pass
