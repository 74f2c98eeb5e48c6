"""An Engine.IO client, on asyncio or trio: talk to an Engine.IO echo server.

    python examples/engineio_client.py http://127.0.0.1:5000 [--backend trio] [--style seed]

``--style structured`` (the default) is the form we recommend: the ``async with`` block
owns the connection and closes it (CLOSE packet, then the transport) when it ends.
``--style seed`` is python-engineio's ``AsyncClient`` form: handlers, ``connect()``, then
``wait()``, which runs the connection in the calling task until it is closed.
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio

import anywire.engineio as engineio


async def structured(url: str) -> None:
    async with engineio.connect(url) as client:
        print(f"connected on {client.transport()}")
        for message in ("hello", b"\x00binary\xff", {"json": [1, 2]}):
            await client.send(message)
            print(f"received {await client.receive()!r}")
    print(f"closed: {client.state}")


async def seed(url: str) -> None:
    eio = engineio.AsyncClient()

    @eio.on("connect")
    async def on_connect() -> None:
        print(f"connected on {eio.transport()}")
        await eio.send("hello")

    @eio.on("message")
    async def on_message(data: Any) -> None:
        print(f"received {data!r}")
        await eio.disconnect()

    @eio.on("disconnect")
    def on_disconnect(reason: str) -> None:
        print(f"disconnected: {reason}")

    await eio.connect(url)
    await eio.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--style", choices=["structured", "seed"], default="structured")
    args = parser.parse_args()
    program = structured if args.style == "structured" else seed
    anyio.run(program, args.url, backend=args.backend)


if __name__ == "__main__":
    main()
