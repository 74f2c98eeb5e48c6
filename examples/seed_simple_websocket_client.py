"""simple-websocket's "Async Client Usage" example, on anywire.

    python examples/seed_simple_websocket_client.py ws://127.0.0.1:8000/ws [--backend trio]
    python examples/seed_simple_websocket_client.py ws://127.0.0.1:8000/ws --style seed

``--style structured`` (the default): ``async with connect(url) as ws:`` owns the
connection (a reader and keep-alive task in the block's task group) and
closes it when the block ends, also on error or cancellation.
``--style seed``: the seed's code, ``ws = await AioClient.connect(url)`` and
``await ws.close()`` in ``finally``. That connection runs no task (pull mode):
``receive()`` reads the socket itself.

Run ``examples/seed_simple_websocket_asgi_server.py`` first.
"""

from __future__ import annotations

import argparse

import anyio

from anywire import websocket as simple_websocket


async def client_example(url: str = "ws://localhost:8000/ws") -> None:
    try:
        # Connect to WebSocket server; the block closes the connection at its end
        async with simple_websocket.connect(url) as ws:
            # Send message
            await ws.send("Hello, Async Server!")
            # Receive response with timeout (None if it expires)
            response = await ws.receive(timeout=10)
            print(f"Server response: {response}")
            # Send binary data
            await ws.send(b"Binary data")
            binary_response = await ws.receive()
            print(f"Binary response: {binary_response!r}")
    except simple_websocket.ConnectionError as e:
        print(f"Failed to connect: {e}")
    except simple_websocket.ConnectionClosed:
        print("Server closed connection")
    except TimeoutError:  # asyncio.TimeoutError is TimeoutError since Python 3.11
        print("Timeout waiting for the connection")


async def client_example_seed(url: str = "ws://localhost:8000/ws") -> None:
    ws = None  # the seed's `finally` used `ws` even when connect() failed
    try:
        # Connect to WebSocket server
        ws = await simple_websocket.AioClient.connect(url)
        # Send message
        await ws.send("Hello, Async Server!")
        # Receive response with timeout
        response = await ws.receive(timeout=10)
        print(f"Server response: {response}")
        # Send binary data
        await ws.send(b"Binary data")
        binary_response = await ws.receive()
        print(f"Binary response: {binary_response!r}")
    except simple_websocket.ConnectionError as e:
        print(f"Failed to connect: {e}")
    except simple_websocket.ConnectionClosed:
        print("Server closed connection")
    except TimeoutError:
        print("Timeout waiting for the connection")
    finally:
        if ws is not None:
            await ws.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="ws://localhost:8000/ws")
    parser.add_argument("--style", choices=["structured", "seed"], default="structured")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    example = client_example if args.style == "structured" else client_example_seed
    anyio.run(example, args.url, backend=args.backend)
