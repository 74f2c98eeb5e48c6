"""python-engineio's AsyncClient examples (``connect``, ``on()``), on anywire.

    python examples/seed_engineio_client.py http://127.0.0.1:5000 [--backend trio]
    python examples/seed_engineio_client.py http://127.0.0.1:5000 --style seed

Run ``examples/seed_engineio_server.py`` first: it answers ``"Echo: ..."``.
The client says ``hello``, answers the first echo with ``response`` (as the
seed's message handler does) and leaves after the second echo.

``--style structured`` (the default): ``async with engineio.connect(url) as
eio:`` owns the connection's tasks and closes it (CLOSE packet, then the
transport) when the block ends; messages come from ``async for``.
``--style seed``: the seed's handlers, registered as a decorator and as a
method, then ``await eio.connect(url)`` and ``await eio.wait()``; the task
that calls ``wait()`` owns the connection's tasks (docs/engineio-client.md).
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio

import anywire.engineio as engineio


async def main(url: str = "http://localhost:5000") -> None:
    async with engineio.connect(url) as eio:
        print("Connection request")
        await eio.send("hello")
        async for msg in eio:
            print("Received message: ", msg)
            if msg == "Echo: response":
                break
            await eio.send("response")
    # leaving the block disconnected the client
    print(f"disconnected: {eio.state}")


async def main_seed(url: str = "http://localhost:5000") -> None:
    eio = engineio.AsyncClient()

    # as a decorator:
    @eio.on("connect")
    def connect_handler() -> None:
        print("Connection request")

    # as a method (async: the seed's sync handler called eio.send() without await):
    async def message_handler(msg: Any) -> None:
        print("Received message: ", msg)
        if msg == "Echo: response":
            await eio.disconnect()
        else:
            await eio.send("response")

    eio.on("message", message_handler)

    @eio.on("disconnect")
    def disconnect_handler(reason: str) -> None:
        print(f"disconnected: {reason}")

    await eio.connect(url)
    await eio.send("hello")  # queued: the connection runs once wait() does
    await eio.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="http://localhost:5000")
    parser.add_argument("--style", choices=["structured", "seed"], default="structured")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    program = main if args.style == "structured" else main_seed
    anyio.run(program, args.url, backend=args.backend)
