"""aio's "Echo TCP server" quickstart, on anywire: echo the first read of each client.

    python examples/seed_aio_echo_server.py --port 8080 [--backend trio]
    python examples/seed_aio_echo_server.py --port 0     # a free port, printed

It serves until Ctrl+C, which shuts the server down gracefully (handlers get
``graceful_shutdown`` seconds). Pair it with ``examples/seed_aio_tcp_client.py``.

What changed from the seed (docs/migration-aio.md): the handler gets a
:class:`~anywire.stream.BufferedStream` instead of a ``socket.socket``, so
``loop.sock_recv``/``loop.sock_sendall`` (asyncio only) became
``read``/``write_all``; the server is started with ``tg.start`` so the program
can print the port it bound.
"""

from __future__ import annotations

import argparse
import logging
from functools import partial

import anyio
from anyio.abc import TaskStatus

from anywire import net, stream


async def echo(socket: stream.BufferedStream) -> None:
    peer_address, peer_port = net.get_socket_peer_address(socket)
    logging.info("client %s:%d connected", peer_address, peer_port)

    data = await socket.read(1024)
    await socket.write_all(data)


async def main(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    logging.basicConfig(level=logging.INFO)

    # The seed's line, unchanged, serves until cancelled:
    #     await net.start_tcp_server(host, port, echo, graceful_shutdown=10.0)
    # Started in a task group, it reports where it listens (port 0: a free port).
    async with anyio.create_task_group() as tg:
        server = partial(net.start_tcp_server, host, port, echo, graceful_shutdown=10.0)
        info = await tg.start(server)
        print(f"listening on {host}:{info.port}", flush=True)
        task_status.started(info.port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    try:  # Ctrl+C cancels the server: a graceful shutdown
        anyio.run(main, args.host, args.port, backend=args.backend)
    except* KeyboardInterrupt:  # trio raises it in an exception group
        pass
