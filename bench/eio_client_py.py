"""The Python Engine.IO clients of bench/eio_client_run.py: one load run, one JSON result.

    python bench/eio_client_py.py IMPL --url URL --transport websocket|polling
        --clients N --inflight K --warmup S --duration S [--size BYTES]

``IMPL``: ``anywire-asyncio``, ``anywire-trio`` (``anywire.engineio.connect``, one task
per client reading with ``async for`` and sending the next message for each echo) or
``python-engineio`` (its ``AsyncClient`` on aiohttp, an async ``message`` handler that
sends the next message). Every client keeps ``inflight`` messages of ``size`` bytes of
text in flight against an echo server. Once all are connected and the warm-up is over,
prints ``START``, measures for ``duration`` seconds, prints ``END`` and then one JSON
line: messages echoed in the window, its length, and this process's CPU time over it
(user + system, from ``/proc/self/stat``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from _harness import process_cpu


@dataclass
class Stats:
    count: int = 0
    connected: int = 0
    errors: list[str] = field(default_factory=list)


def report(stats: Stats, window: tuple[int, float, float], end: tuple[int, float, float]) -> None:
    messages, seconds, cpu = (b - a for a, b in zip(window, end, strict=True))
    result = {
        "messages": messages,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "connected": stats.connected,
        "errors": stats.errors[:5],
    }
    print(json.dumps(result), flush=True)


def snapshot(stats: Stats) -> tuple[int, float, float]:
    return stats.count, time.monotonic(), process_cpu("self")


async def measure(
    stats: Stats, args: argparse.Namespace, sleep: Callable[[float], Awaitable[Any]]
) -> None:
    """Wait for every client, warm up, then print START and END around the window."""
    deadline = time.monotonic() + 60
    while stats.connected + len(stats.errors) < args.clients and time.monotonic() < deadline:
        await sleep(0.05)
    await sleep(args.warmup)
    start = snapshot(stats)
    print("START", flush=True)
    await sleep(args.duration)
    end = snapshot(stats)
    print("END", flush=True)
    report(stats, start, end)


# -- anywire --------------------------------------------------------------------------


async def run_anywire(args: argparse.Namespace) -> None:
    import anyio

    import anywire.engineio as engineio

    stats = Stats()
    payload = "x" * args.size
    limit = anyio.Semaphore(20)  # connect at most 20 at once

    async def client() -> None:
        await limit.acquire()
        connecting = True
        try:
            async with engineio.connect(
                args.url, transports=args.transport, request_timeout=30
            ) as c:
                limit.release()
                connecting = False
                stats.connected += 1
                for _ in range(args.inflight):
                    await c.send(payload)
                async for _ in c:
                    stats.count += 1
                    await c.send(payload)
        except Exception as exc:
            stats.errors.append(repr(exc))
        finally:
            if connecting:
                limit.release()

    async with anyio.create_task_group() as tg:
        for _ in range(args.clients):
            tg.start_soon(client)
        await measure(stats, args, anyio.sleep)
        tg.cancel_scope.cancel()


# -- python-engineio ------------------------------------------------------------------


async def run_python_engineio(args: argparse.Namespace) -> None:
    import asyncio

    import engineio  # type: ignore[import-untyped]

    stats = Stats()
    payload = "x" * args.size
    limit = asyncio.Semaphore(20)
    clients: list[Any] = []

    async def client() -> None:
        eio = engineio.AsyncClient(request_timeout=30, handle_sigint=False)

        async def on_message(data: Any) -> None:
            stats.count += 1
            await eio.send(payload)

        eio.on("message", on_message)
        try:
            async with limit:
                await eio.connect(args.url, transports=[args.transport])
            clients.append(eio)
            stats.connected += 1
            for _ in range(args.inflight):
                await eio.send(payload)
        except Exception as exc:
            stats.errors.append(repr(exc))

    await asyncio.gather(*(client() for _ in range(args.clients)))
    await measure(stats, args, asyncio.sleep)
    await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=["anywire-asyncio", "anywire-trio", "python-engineio"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--transport", choices=["websocket", "polling"], required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--inflight", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    if args.impl == "python-engineio":
        import asyncio

        asyncio.run(run_python_engineio(args))
    else:
        import anyio

        anyio.run(run_anywire, args, backend=args.impl.removeprefix("anywire-"))
    sys.stdout.flush()
    os._exit(0)  # do not wait for clients still closing after the measurement


if __name__ == "__main__":
    main()
