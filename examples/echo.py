"""A WebSocket echo server and a client that talks to it, in one program.

Run it with ``python examples/echo.py`` (asyncio) or
``python examples/echo.py --backend trio``.
"""

from __future__ import annotations

import argparse

import anyio

from anywire.websocket import WebSocket, connect, serve_websocket


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def main() -> None:
    async with anyio.create_task_group() as tg:
        server = await tg.start(serve_websocket, echo, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{server.port}/echo"
        print(f"server listening on {url}")
        async with connect(url) as ws:
            for message in ["hello", "structured", b"\x00binary\xff"]:
                await ws.send(message)
                reply = await ws.receive()
                print(f"sent {message!r}, received {reply!r}")
        print("client closed the connection (code 1000)")
        tg.cancel_scope.cancel()
    print("server stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    anyio.run(main, backend=parser.parse_args().backend)
