"""An Engine.IO echo server on anywire, for asyncio or trio.

Run it with anywire's runner (the app's lifespan starts the server)::

    python -m anywire serve examples.engineio_server:app --port 5000
    python examples/engineio_server.py --port 5000 --backend trio

Every client gets its messages echoed; "bye" makes the server close the session.
Mounted inside another framework (FastAPI, Starlette), enter the server in that
app's lifespan instead; see docs/engineio-server.md.
"""

from __future__ import annotations

import argparse
from typing import Any

import anywire
from anywire.engineio import ASGIApp, AsyncServer

eio = AsyncServer(cors_allowed_origins="*")


@eio.on("connect")
async def connect(sid: str, environ: dict[str, Any]) -> None:
    async with eio.session(sid) as session:
        session["count"] = 0
    print(f"connect {sid} from {environ.get('REMOTE_ADDR')}")


@eio.on("message")
async def message(sid: str, data: str | bytes) -> None:
    if data == "bye":
        await eio.disconnect(sid)
        return
    async with eio.session(sid) as session:
        session["count"] += 1
    await eio.send(sid, data)


@eio.on("disconnect")
def disconnect(sid: str, reason: str) -> None:
    print(f"disconnect {sid}: {reason}")


app = ASGIApp(eio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anywire.serve(app, args.host, args.port, backend=args.backend)


if __name__ == "__main__":
    main()
