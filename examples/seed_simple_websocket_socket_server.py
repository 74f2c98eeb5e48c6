"""simple-websocket's "Custom Socket Integration" example, on anywire: answer "Received: ...".

    python examples/seed_simple_websocket_socket_server.py --port 8000 [--backend trio]
    python examples/seed_simple_websocket_socket_server.py --port 0 --style seed

``--style structured`` (the default): ``serve_websocket`` owns the listening
socket and runs each connection's handler in its own task, so clients are
served at the same time; Ctrl+C (cancellation) stops it gracefully.

``--style seed``: the seed's own loop over a ``socket.socket`` it binds itself,
one client after another, with ``AioServer.accept(sock=client_sock)``. Two
fixes were needed: the seed's ``server_sock.accept()`` blocks the whole event
loop, so the socket is non-blocking and the loop waits with
``anyio.wait_readable``; and the seed's made-up ``headers`` dict (with the
invalid key ``'example-key'``) is gone: without ``headers=``, anywire reads
the client's upgrade request from the socket itself. (``headers=`` still
exists for a request that your code has already read.)

Clients: ``examples/seed_simple_websocket_context_manager.py``.
"""

from __future__ import annotations

import argparse
import socket
from functools import partial

import anyio
from anyio.abc import TaskStatus

from anywire import websocket as simple_websocket


async def handle(ws: simple_websocket.WebSocket) -> None:
    addr = ws.remote_address
    try:
        # Handle connection
        while True:
            message = await ws.receive(timeout=30)
            if message is None:  # 30 s without a message
                break
            await ws.send(f"Received: {message}")
    except simple_websocket.ConnectionClosed:
        print(f"Client {addr} disconnected")
    # serve_websocket closes the connection when the handler returns


async def custom_socket_server(
    host: str = "localhost",
    port: int = 8000,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    async with anyio.create_task_group() as tg:
        info = await tg.start(partial(simple_websocket.serve_websocket, handle, host, port))
        print(f"listening on ws://{host}:{info.port}/", flush=True)
        task_status.started(info.port)


async def custom_socket_server_seed(
    host: str = "localhost",
    port: int = 8000,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    # Create and bind socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server_sock:
        server_sock.bind((host, port))
        server_sock.listen(1)
        server_sock.setblocking(False)
        port = server_sock.getsockname()[1]
        print(f"listening on ws://{host}:{port}/", flush=True)
        task_status.started(port)

        while True:
            await anyio.wait_readable(server_sock)
            try:
                client_sock, addr = server_sock.accept()
            except BlockingIOError:  # another waiter took it, or a spurious wake-up
                continue

            # Accept WebSocket with custom socket: the upgrade request is read here
            ws = await simple_websocket.AioServer.accept(sock=client_sock)
            try:
                # Handle connection
                while True:
                    message = await ws.receive(timeout=30)
                    if message is None:
                        break
                    await ws.send(f"Received: {message}")
            except simple_websocket.ConnectionClosed:
                print(f"Client {addr} disconnected")
            finally:
                await ws.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--style", choices=["structured", "seed"], default="structured")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    server = custom_socket_server if args.style == "structured" else custom_socket_server_seed
    try:  # Ctrl+C cancels the server: a graceful shutdown
        anyio.run(server, args.host, args.port, backend=args.backend)
    except* KeyboardInterrupt:  # trio raises it in an exception group
        pass
