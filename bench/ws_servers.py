"""Echo servers under test, one per process: ``python bench/ws_servers.py IMPL --port 0``.

Each server binds 127.0.0.1, prints ``PORT <n>`` on stdout once it accepts
connections, and echoes every message (or, for the ``anyio-tcp-*`` floors, every
byte) until the process is terminated. ``--compression`` turns permessage-deflate
on where the implementation has it; it is off otherwise.

Every server keeps its library's defaults except compression and the maximum
message size (4 MiB, so the 1 MiB scenario fits everywhere).
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
from collections.abc import Awaitable, Callable

MAX_MESSAGE = 4 * 1024 * 1024
HOST = "127.0.0.1"


def announce(port: int) -> None:
    print(f"PORT {port}", flush=True)


# -- anywire -------------------------------------------------------------------------


async def anywire_main(port: int, compression: bool) -> None:
    import anyio

    from anywire.websocket import WebSocket, serve_websocket

    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    serve = functools.partial(
        serve_websocket, compression=compression, max_message_size=MAX_MESSAGE
    )
    async with anyio.create_task_group() as tg:
        info = await tg.start(serve, echo, HOST, port)
        announce(info.port)


# -- the floor: anyio's bare TCP echo --------------------------------------------


async def anyio_tcp_main(port: int, compression: bool) -> None:
    import anyio
    from anyio.abc import SocketAttribute, SocketStream

    async def echo(stream: SocketStream) -> None:
        async with stream:
            try:
                while True:
                    await stream.send(await stream.receive(65536))
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    listener = await anyio.create_tcp_listener(local_host=HOST, local_port=port)
    async with listener:
        announce(listener.extra(SocketAttribute.local_port))
        await listener.serve(echo)


# -- websockets --------------------------------------------------------------------


async def websockets_asyncio_main(port: int, compression: bool) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    deflate = "deflate" if compression else None
    async with serve(echo, HOST, port, compression=deflate, max_size=MAX_MESSAGE) as server:
        announce(server.sockets[0].getsockname()[1])
        await server.serve_forever()


async def websockets_trio_main(port: int, compression: bool) -> None:
    import trio
    from websockets.trio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    deflate = "deflate" if compression else None
    start = functools.partial(
        serve, echo, port, host=HOST, compression=deflate, max_size=MAX_MESSAGE
    )
    async with trio.open_nursery() as nursery:
        server = await nursery.start(start)
        announce(server.listeners[0].socket.getsockname()[1])


# -- trio-websocket ------------------------------------------------------------------


async def trio_websocket_main(port: int, compression: bool) -> None:
    import trio
    from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

    if compression:
        raise SystemExit("trio-websocket has no permessage-deflate")

    async def echo(request: WebSocketRequest) -> None:
        ws = await request.accept()
        while True:
            try:
                message = await ws.get_message()
            except ConnectionClosed:
                return
            await ws.send_message(message)

    start = functools.partial(serve_websocket, echo, HOST, port, None, max_message_size=MAX_MESSAGE)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(start)
        announce(server.port)


# -- the table -----------------------------------------------------------------------

Main = Callable[[int, bool], Awaitable[None]]


def _anyio_run(main: Main, backend: str) -> Callable[[int, bool], None]:
    def run(port: int, compression: bool) -> None:
        import anyio

        anyio.run(main, port, compression, backend=backend)

    return run


def _trio_run(main: Main) -> Callable[[int, bool], None]:
    def run(port: int, compression: bool) -> None:
        import trio

        trio.run(main, port, compression)

    return run


def _asyncio_run(main: Main) -> Callable[[int, bool], None]:
    def run(port: int, compression: bool) -> None:
        import asyncio

        asyncio.run(main(port, compression))  # type: ignore[arg-type]

    return run


#: name -> (runner, "WebSocket" or "TCP")
IMPLEMENTATIONS: dict[str, tuple[Callable[[int, bool], None], str]] = {
    "anywire-asyncio": (_anyio_run(anywire_main, "asyncio"), "WebSocket"),
    "anywire-trio": (_anyio_run(anywire_main, "trio"), "WebSocket"),
    "websockets-asyncio": (_asyncio_run(websockets_asyncio_main), "WebSocket"),
    "websockets-trio": (_trio_run(websockets_trio_main), "WebSocket"),
    "trio-websocket": (_trio_run(trio_websocket_main), "WebSocket"),
    "anyio-tcp-echo-asyncio": (_anyio_run(anyio_tcp_main, "asyncio"), "TCP"),
    "anyio-tcp-echo-trio": (_anyio_run(anyio_tcp_main, "trio"), "TCP"),
}


def install_cprofile(path: str) -> None:
    """cProfile between SIGUSR1 (start) and SIGUSR2 (stop and write ``path``).

    For ``bench/run.py --profile``: exact call counts, at the price of cProfile's
    overhead on every call (never use it for the timed scenarios).
    """
    import cProfile

    profiler = cProfile.Profile()

    def stop(signum: int, frame: object) -> None:
        profiler.disable()
        profiler.dump_stats(path)
        print("PROFILE WRITTEN", flush=True)

    signal.signal(signal.SIGUSR1, lambda signum, frame: profiler.enable())
    signal.signal(signal.SIGUSR2, stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=sorted(IMPLEMENTATIONS))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--compression", action="store_true")
    parser.add_argument("--cprofile", metavar="PATH", help="profile between SIGUSR1 and SIGUSR2")
    args = parser.parse_args(argv)
    run, _kind = IMPLEMENTATIONS[args.impl]
    if args.cprofile:
        install_cprofile(args.cprofile)
    try:
        run(args.port, args.compression)
    except KeyboardInterrupt:
        sys.exit(130)


def kind(impl: str) -> str:
    """``"WebSocket"`` or ``"TCP"``: what the load generator must speak to ``impl``."""
    return IMPLEMENTATIONS[impl][1]


if __name__ == "__main__":
    main()
