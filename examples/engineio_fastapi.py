"""An Engine.IO echo server mounted in a FastAPI app, for asyncio or trio.

FastAPI does not pass lifespan events to mounted apps, so the Engine.IO
server is entered in FastAPI's own lifespan: its sessions and background tasks
live there. A request that reaches the server before that (or without it)
gets a 500 that says so. Run it::

    python -m anywire serve examples.engineio_fastapi:app --port 5000
    python examples/engineio_fastapi.py --port 5000 --backend trio

``GET /hello`` is a FastAPI route; ``/engine.io/`` is the Engine.IO server.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

import anywire
from anywire.engineio import ASGIApp, AsyncServer

eio = AsyncServer(async_mode="asgi")


@eio.on("connect")
async def connect(sid: str, environ: dict[str, Any]) -> None:
    print(f"connect {sid}")


@eio.on("message")
async def message(sid: str, data: str | bytes) -> None:
    await eio.send(sid, data)


@eio.on("disconnect")
def disconnect(sid: str, reason: str) -> None:
    print(f"disconnect {sid}: {reason}")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with eio:  # the Engine.IO server runs for the app's life
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


app.mount("/", ASGIApp(eio))  # after the routes: serves /engine.io/, 404 elsewhere


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anywire.serve(app, args.host, args.port, backend=args.backend)


if __name__ == "__main__":
    main()
