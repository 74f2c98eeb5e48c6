"""python-engineio's AsyncServer examples (event handlers, user sessions), on anywire.

    python examples/seed_engineio_server.py --port 5000 [--backend trio]
    python examples/seed_engineio_server.py --port 0 --sync-connect   # a free port, printed

The handlers are the seed's, unchanged. What changed (docs/migration-python-engineio.md):
``engineio`` is ``anywire.engineio``; ``async_mode`` is not needed (anywire
serves ASGI on asyncio or trio); and the server has an owner: ``ASGIApp(eio)``
enters ``async with eio:`` in its ASGI lifespan, so the sessions' heartbeat
timers and the handler tasks run in the server's task group and end with it.
``--sync-connect`` registers the seed's synchronous ``connect`` handler
instead ("synchronous handlers also work"). Ctrl+C stops the server: every
client gets a CLOSE packet first. Client: ``examples/seed_engineio_client.py``.
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskStatus

import anywire.engineio as engineio
from anywire import serve_app

# Create async server
eio = engineio.AsyncServer()


# Async event handlers
@eio.on("connect")
async def on_connect(sid: str, environ: dict[str, Any]) -> None:
    print(f"Client {sid} connected")
    # Async context manager approach: the session is saved at the end of the block
    async with eio.session(sid) as session:
        session["user_id"] = 123
        session["preferences"] = {"theme": "dark"}


@eio.on("message")
async def on_message(sid: str, data: Any) -> None:
    print(f"Received: {data}")
    # Direct async session management
    session_data = await eio.get_session(sid)
    session_data["messages"] = session_data.get("messages", 0) + 1
    await eio.save_session(sid, session_data)
    await eio.send(sid, f"Echo: {data}")


@eio.on("disconnect")
async def on_disconnect(sid: str) -> None:  # the reason is passed to a handler that takes it
    print(f"Client {sid} disconnected")


# Synchronous handlers also work
def on_connect_sync(sid: str, environ: dict[str, Any]) -> None:
    print(f"Client {sid} connected (sync)")


# Create ASGI app: its lifespan runs the server (`async with eio:`)
app = engineio.ASGIApp(eio)


async def main(
    host: str = "127.0.0.1",
    port: int = 5000,
    *,
    sync_connect: bool = False,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    if sync_connect:
        eio.on("connect", on_connect_sync)  # the method form of on(); replaces on_connect
    async with anyio.create_task_group() as tg:
        info = await tg.start(partial(serve_app, app, host, port, lifespan="on"))
        print(f"listening on http://{host}:{info.port}", flush=True)
        task_status.started(info.port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--sync-connect", action="store_true")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    try:  # Ctrl+C cancels the server: a graceful shutdown
        anyio.run(
            partial(main, args.host, args.port, sync_connect=args.sync_connect),
            backend=args.backend,
        )
    except* KeyboardInterrupt:  # trio raises it in an exception group
        pass
