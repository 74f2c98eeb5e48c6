"""``python -m anywire demo``: serve the chat page and say which URL to open."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from anywire.server._config import ServerConfig
from anywire.server._logging import configure_cli_logging
from anywire.server._run import ServerInfo, run_blocking

from ._chat import create_app
from ._client_build import (
    CACHE_ENV,
    ENGINEIO_CLIENT_VERSION,
    ClientBuildUnavailable,
    cache_dir,
    client_path,
    ensure_client,
)

__all__ = ["add_demo_command", "run_demo"]

_DESCRIPTION = f"""\
Serve a small chat page over Engine.IO: join with a name, send messages (every
open tab sees them), watch the transport (polling, then websocket) and the
round-trip time. The page uses the official browser build of engine.io-client
{ENGINEIO_CLIENT_VERSION}, which the first run fetches with npm into a cache folder
(${CACHE_ENV}, else ~/.cache/anywire/demo). Stop with Ctrl+C.
"""

_EPILOG = """\
examples:
  python -m anywire demo
  python -m anywire demo --backend trio --port 8080
"""


def add_demo_command(commands: Any) -> None:
    """Add ``demo`` to the subcommands (``commands`` from ``add_subparsers``)."""
    demo: argparse.ArgumentParser = commands.add_parser(
        "demo",
        help="a chat page in the browser, over Engine.IO",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--backend", choices=["asyncio", "trio"], default="asyncio", help="event loop (asyncio)"
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    demo.add_argument(
        "--port", type=int, default=8000, help="port to bind; 0 picks a free one (default: 8000)"
    )


def run_demo(args: argparse.Namespace) -> int:
    """Fetch the browser build if needed, then serve until Ctrl+C; the exit status."""
    if args.backend == "trio" and importlib.util.find_spec("trio") is None:
        return _fail("--backend trio needs trio: pip install 'anywire[trio]'")
    client_js = cached_client()
    if client_js is None:
        return 1
    configure_cli_logging("warning", access_log=False)
    config = ServerConfig(
        host=args.host, port=args.port, lifespan="on", access_log=False, graceful_shutdown=2.0
    )
    try:
        run_blocking(
            create_app(client_js),
            config,
            backend=args.backend,
            on_started=lambda info: _print_url(info, args.backend),
        )
    except OSError as exc:  # the port is in use, ...
        return _fail(f"could not start the server: {exc}")
    return 0


def cached_client() -> Path | None:
    """The cached browser build (fetched first if missing), or None after printing why."""
    folder = cache_dir()
    try:
        if not client_path(folder).is_file():
            print(
                f"anywire demo: fetching engine.io-client {ENGINEIO_CLIENT_VERSION} "
                f"with npm into {folder} (first run only)",
                flush=True,
            )
        return ensure_client(folder)
    except ClientBuildUnavailable as exc:
        _fail(str(exc))
        return None


def _print_url(info: ServerInfo, backend: str) -> None:
    url = info.urls[0]
    print(f"anywire demo: open {url}/ in two browser tabs ({backend} backend; Ctrl+C stops)")
    sys.stdout.flush()


def _fail(message: str) -> int:
    print(f"anywire demo: error: {message}", file=sys.stderr, flush=True)
    return 1
