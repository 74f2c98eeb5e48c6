"""Engine.IO echo servers under test, one per process: ``python bench/eio_servers.py IMPL``.

Each server binds 127.0.0.1 (``--port 0``: any free port), prints ``PORT <n>`` on
stdout once it accepts connections, and echoes every message (text as text, binary
as binary) until the process is terminated.

Every server gets the same Engine.IO settings: ping interval 25 s and ping timeout
20 s (``--ping-interval``/``--ping-timeout`` change both for all), the largest
message 1,000,000 bytes, HTTP compression and permessage-deflate off, no CORS
configuration (the node client sends no ``Origin``), no access log, no WebSocket-level
pings (Engine.IO has its own heartbeat; node ``engine.io`` sends none).

- ``anywire-asyncio``, ``anywire-trio``: ``anywire.engineio.ASGIApp`` on anywire's
  runner (``serve_app``) under ``anyio.run(backend=...)``;
- ``python-engineio-uvicorn``: ``engineio.AsyncServer(async_mode="asgi")`` as an
  ``engineio.ASGIApp`` on uvicorn, stdlib asyncio loop (not uvloop), uvicorn's
  default HTTP and WebSocket protocol classes (httptools and websockets when installed);
- ``node-engine.io``: npm ``engine.io`` (``bench/eio_node_server.mjs``; this process
  becomes node, so its pid is the server's).

``--stats`` (anywire and python-engineio) counts sessions, messages and disconnect
reasons and serves them as JSON at ``GET /stats``, and logs warnings to stderr: for
the load test (``bench/eio_load.py``).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import resource
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
MAX_PAYLOAD = 1_000_000
BENCH = Path(__file__).resolve().parent
NODE_SERVER = BENCH / "eio_node_server.mjs"


def announce(port: int) -> None:
    print(f"PORT {port}", flush=True)


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit (thousands of sessions)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# -- the application: the same handlers for anywire and python-engineio ------------------


class Stats:
    """What ``--stats`` counts; ``GET /stats`` returns it as JSON."""

    def __init__(self) -> None:
        self.sessions = 0
        self.connects = 0
        self.messages = 0
        self.disconnects: Counter[str] = Counter()

    def as_json(self) -> bytes:
        rss = _rss_kib()
        data = {
            "sessions": self.sessions,
            "connects": self.connects,
            "messages": self.messages,
            "disconnects": dict(self.disconnects),
            "rss_kib": rss,
        }
        return json.dumps(data).encode()


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def install_echo(eio: Any, stats: Stats | None) -> None:
    """Echo handlers on ``eio`` (anywire's or python-engineio's ``AsyncServer``)."""
    if stats is None:

        async def echo(sid: str, data: Any) -> None:
            await eio.send(sid, data)

        eio.on("message", echo)
        return

    async def counted_echo(sid: str, data: Any) -> None:
        stats.messages += 1
        await eio.send(sid, data)

    def connect(sid: str, environ: Any) -> None:
        stats.sessions += 1
        stats.connects += 1

    def disconnect(sid: str, reason: Any) -> None:
        stats.sessions -= 1
        stats.disconnects[str(getattr(reason, "value", reason))] += 1

    eio.on("message", counted_echo)
    eio.on("connect", connect)
    eio.on("disconnect", disconnect)


def stats_app(stats: Stats) -> Callable[..., Any]:
    """A tiny ASGI app for every path that is not Engine.IO's: ``/stats``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = stats.as_json()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def engineio_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``AsyncServer`` options both Python servers get."""
    return {
        "ping_interval": args.ping_interval,
        "ping_timeout": args.ping_timeout,
        "max_http_buffer_size": MAX_PAYLOAD,
        "http_compression": False,
    }


def _setup_stats(args: argparse.Namespace) -> Stats | None:
    if not args.stats:
        return None
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return Stats()


# -- anywire ------------------------------------------------------------------------------


def anywire_run(backend: str) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        import anyio

        anyio.run(anywire_main, args, backend=backend)

    return run


async def anywire_main(args: argparse.Namespace) -> None:
    import anyio

    from anywire.engineio import ASGIApp, AsyncServer
    from anywire.server import serve_app

    stats = _setup_stats(args)
    eio = AsyncServer(**engineio_options(args))
    install_echo(eio, stats)
    app = ASGIApp(eio, other_asgi_app=stats_app(stats) if stats else None)
    options: dict[str, Any] = {
        "ws_compression": False,
        "ws_ping_interval": None,
        "access_log": False,
        "backlog": 4096,
    }
    async with anyio.create_task_group() as tg:
        info = await tg.start(functools.partial(serve_app, app, HOST, args.port, **options))
        announce(info.port)


# -- python-engineio on uvicorn ------------------------------------------------------------


def python_engineio_run(args: argparse.Namespace) -> None:
    import asyncio

    import engineio  # type: ignore[import-untyped]
    import uvicorn

    stats = _setup_stats(args)
    eio = engineio.AsyncServer(async_mode="asgi", **engineio_options(args))
    install_echo(eio, stats)
    app = engineio.ASGIApp(eio, other_asgi_app=stats_app(stats) if stats else None)
    config = uvicorn.Config(
        app,
        host=HOST,
        port=args.port,
        loop="asyncio",
        lifespan="off",
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        ws_max_size=2 * MAX_PAYLOAD,
        access_log=False,
        log_level="warning",
        backlog=4096,
    )

    async def serve() -> None:
        # uvicorn binds (port 0): a socket made here would lack TCP_NODELAY, which
        # asyncio sets only on sockets created with IPPROTO_TCP; polling then waits
        # for delayed ACKs (40 ms per response).
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.01)
        announce(server.servers[0].sockets[0].getsockname()[1])
        await task

    asyncio.run(serve())


# -- node engine.io -------------------------------------------------------------------------


def node_run(args: argparse.Namespace) -> None:
    """Become ``node eio_node_server.mjs`` (same pid, same stdout)."""
    if args.stats:
        raise SystemExit("--stats: not for the node server")
    argv = [
        "node",
        str(NODE_SERVER),
        "--port",
        str(args.port),
        "--ping-interval",
        str(round(args.ping_interval * 1000)),
        "--ping-timeout",
        str(round(args.ping_timeout * 1000)),
        "--max-payload",
        str(MAX_PAYLOAD),
    ]
    sys.stdout.flush()
    os.execvp("node", argv)


IMPLEMENTATIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    "anywire-asyncio": anywire_run("asyncio"),
    "anywire-trio": anywire_run("trio"),
    "python-engineio-uvicorn": python_engineio_run,
    "node-engine.io": node_run,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("impl", choices=list(IMPLEMENTATIONS))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ping-interval", type=float, default=25.0, help="seconds")
    parser.add_argument("--ping-timeout", type=float, default=20.0, help="seconds")
    parser.add_argument("--stats", action="store_true", help="count, serve GET /stats")
    args = parser.parse_args(argv)
    raise_fd_limit()
    try:
        IMPLEMENTATIONS[args.impl](args)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
