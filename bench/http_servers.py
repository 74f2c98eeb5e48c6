"""ASGI servers under test, one per process: ``python bench/http_servers.py IMPL``.

One raw ASGI application (:func:`app`) runs under every server: ``GET /json``
answers ``{"message":"Hello, World!"}`` and ``/ws`` is a WebSocket echo. Each
server binds 127.0.0.1 on a free port with access logs off, and keeps its defaults
otherwise; once it answers ``GET /json`` with that body, this script prints ``PORT
<n>`` on stdout. It serves until terminated (SIGTERM).

Servers (``IMPL``):

- ``anywire-asyncio``, ``anywire-trio``: ``anywire.serve(app, backend=...)``;
- ``uvicorn-h11``, ``uvicorn-httptools``: uvicorn with that HTTP parser on the stock
  asyncio loop; ``uvicorn-websockets``, ``uvicorn-wsproto``: with that WebSocket
  implementation (and httptools for the handshake); ``-uvloop``: the same on uvloop
  (a reference: uvicorn's default when uvloop is installed);
- ``hypercorn-asyncio``, ``hypercorn-trio``: ``hypercorn.asyncio.serve`` under
  ``asyncio.run`` and ``hypercorn.trio.serve`` under ``trio.run``.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http.client import HTTPConnection
from typing import Any

HOST = "127.0.0.1"
BODY = b'{"message":"Hello, World!"}'
JSON_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
NOT_FOUND = [(b"content-type", b"text/plain"), (b"content-length", b"9")]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# -- the application -------------------------------------------------------------------


async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    """``GET /json``, a WebSocket echo at ``/ws``, and an empty lifespan."""
    kind = scope["type"]
    if kind == "http":
        await json_response(scope, send)
    elif kind == "websocket":
        await websocket_echo(receive, send)
    elif kind == "lifespan":
        await lifespan(receive, send)


async def json_response(scope: MutableMapping[str, Any], send: Send) -> None:
    if scope["path"] == "/json":
        await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
        await send({"type": "http.response.body", "body": BODY})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": NOT_FOUND})
        await send({"type": "http.response.body", "body": b"not found"})


async def websocket_echo(receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# -- the servers -----------------------------------------------------------------------


def run_anywire(port: int, backend: str) -> None:
    import anywire

    anywire.serve(app, HOST, port, backend=backend, access_log=False, graceful_shutdown=1.0)


def run_uvicorn(port: int, http: str, ws: str, loop: str) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host=HOST,
        port=port,
        http=http,
        ws=ws,
        loop=loop,
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )


def _hypercorn_config(port: int) -> Any:
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{HOST}:{port}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = 1.0
    return config


def run_hypercorn_asyncio(port: int) -> None:
    import asyncio

    from hypercorn.asyncio import serve

    asyncio.run(serve(app, _hypercorn_config(port)))  # type: ignore[arg-type]


def run_hypercorn_trio(port: int) -> None:
    import functools

    import trio
    from hypercorn.trio import serve

    trio.run(functools.partial(serve, app, _hypercorn_config(port)))  # type: ignore[arg-type]


def _uvicorn(http: str, ws: str, loop: str = "asyncio") -> Callable[[int], None]:
    return lambda port: run_uvicorn(port, http, ws, loop)


#: name -> function(port) that serves until the process is terminated
SERVERS: dict[str, Callable[[int], None]] = {
    "anywire-asyncio": lambda port: run_anywire(port, "asyncio"),
    "anywire-trio": lambda port: run_anywire(port, "trio"),
    "uvicorn-h11": _uvicorn("h11", "auto"),
    "uvicorn-httptools": _uvicorn("httptools", "auto"),
    "uvicorn-httptools-uvloop": _uvicorn("httptools", "auto", "uvloop"),
    "uvicorn-websockets": _uvicorn("httptools", "websockets"),
    "uvicorn-wsproto": _uvicorn("httptools", "wsproto"),
    "uvicorn-websockets-uvloop": _uvicorn("httptools", "websockets", "uvloop"),
    "hypercorn-asyncio": run_hypercorn_asyncio,
    "hypercorn-trio": run_hypercorn_trio,
}

#: The modules each server imports beyond the standard library: a row is skipped
#: when one is missing.
REQUIRES: dict[str, list[str]] = {
    "anywire-asyncio": ["anywire"],
    "anywire-trio": ["anywire", "trio"],
    "uvicorn-h11": ["uvicorn", "h11"],
    "uvicorn-httptools": ["uvicorn", "httptools"],
    "uvicorn-httptools-uvloop": ["uvicorn", "httptools", "uvloop"],
    "uvicorn-websockets": ["uvicorn", "httptools", "websockets"],
    "uvicorn-wsproto": ["uvicorn", "httptools", "wsproto"],
    "uvicorn-websockets-uvloop": ["uvicorn", "httptools", "websockets", "uvloop"],
    "hypercorn-asyncio": ["hypercorn"],
    "hypercorn-trio": ["hypercorn", "trio"],
}


# -- the process -------------------------------------------------------------------------


def free_port() -> int:
    """A port nobody listens on now (uvicorn and hypercorn do not report port 0's)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def announce_when_serving(port: int, timeout: float = 30.0) -> None:
    """In a thread: ``GET /json`` until the server answers it right; then ``PORT n``.

    The same check for every server, whether or not it can report readiness itself;
    a wrong answer prints ``ERROR ...`` instead (the harness then gives up on it).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = HTTPConnection(HOST, port, timeout=5)
        try:
            conn.request("GET", "/json")
            response = conn.getresponse()
            body = response.read()
        except OSError:
            time.sleep(0.02)
            continue
        finally:
            conn.close()
        if response.status == 200 and body == BODY:
            print(f"PORT {port}", flush=True)
        else:
            print(f"ERROR GET /json answered {response.status} {body[:80]!r}", flush=True)
        return
    print(f"ERROR not serving on port {port} after {timeout:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=sorted(SERVERS))
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--cprofile", metavar="PATH", help="profile between SIGUSR1 and SIGUSR2")
    args = parser.parse_args(argv)
    if args.cprofile:
        from ws_servers import install_cprofile

        install_cprofile(args.cprofile)
    port = args.port or free_port()
    threading.Thread(target=announce_when_serving, args=(port,), daemon=True).start()
    try:
        SERVERS[args.impl](port)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
