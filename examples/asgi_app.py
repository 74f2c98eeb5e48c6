"""A plain ASGI application (HTTP and WebSocket) served by anywire's runner.

Serve it from the command line::

    python -m anywire serve asgi_app:app --app-dir examples --port 8000

or run this file: it starts the server in its own task group on a free port,
talks to it over HTTP (httpx) and WebSocket, and shuts it down::

    python examples/asgi_app.py              # asyncio
    python examples/asgi_app.py --backend trio
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import anyio
import httpx

from anywire import serve_app
from anywire.websocket import accept, connect

Scope = dict[str, Any]


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """``GET /hello`` answers JSON, ``/echo`` is a WebSocket echo; lifespan fills ``state``."""
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
    elif scope["type"] == "websocket":
        # Under anywire's runner this is the full WebSocket driver (keep-alive
        # pings, size checks before buffering); under uvicorn or hypercorn it is
        # the same API over ASGI messages.
        async with accept(asgi=(scope, receive, send), ping_interval=20) as ws:
            async for message in ws:
                await ws.send(message)
    else:
        body = json.dumps({"hello": scope["path"], "started": scope["state"]["started"]})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


async def lifespan(scope: Scope, receive: Any, send: Any) -> None:
    await receive()  # lifespan.startup
    scope["state"]["started"] = True
    await send({"type": "lifespan.startup.complete"})
    await receive()  # lifespan.shutdown
    print("lifespan shutdown")
    await send({"type": "lifespan.shutdown.complete"})


async def main() -> None:
    async with anyio.create_task_group() as tg:
        info = await tg.start(serve_app, app, "127.0.0.1", 0)
        url = info.urls[0]
        print(f"serving on {url}")
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{url}/hello")
            print(f"GET /hello -> {response.status_code} {response.json()}")
        async with connect(f"{url.replace('http', 'ws', 1)}/echo") as ws:
            await ws.send("hi there")
            print(f"WebSocket echo -> {await ws.receive()!r}")
        tg.cancel_scope.cancel()  # graceful shutdown, then lifespan shutdown
    print("server stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    anyio.run(main, backend=parser.parse_args().backend)
