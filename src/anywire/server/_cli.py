"""``python -m anywire serve module:app`` (the runner) and ``python -m anywire demo``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Any, cast

from anywire._demo import add_demo_command, run_demo

from ._config import ASGIApp, ServerConfig
from ._lifespan import LifespanError
from ._logging import configure_cli_logging
from ._run import ServerInfo, run_blocking

__all__ = ["AppImportError", "build_parser", "import_app", "main"]

_DESCRIPTION = """\
Serve an ASGI 3 application (HTTP/1.1 and WebSocket) on asyncio or trio.

APP is MODULE:ATTRIBUTE, as for uvicorn: "myproject.asgi:app" imports
myproject.asgi (from the current directory, or --app-dir) and serves its
attribute "app". Stop with Ctrl+C or SIGTERM: requests in flight get
--graceful-shutdown seconds, WebSockets are closed with 1001; a second Ctrl+C
exits at once.
"""

_EPILOG = """\
examples:
  python -m anywire serve myapp:app
  python -m anywire serve myapp:app --host 0.0.0.0 --port 8080 --backend trio
  python -m anywire serve myapp:app --certfile cert.pem --keyfile key.pem
  python -m anywire serve myapp:app --uds /run/myapp.sock --proxy-headers
"""


class AppImportError(Exception):
    """``MODULE:ATTRIBUTE`` could not be imported (the message says why)."""


def import_app(spec: str) -> ASGIApp:
    """Import ``module:attribute`` (dots in the attribute walk into objects)."""
    module_name, sep, attrs = spec.partition(":")
    if not sep or not module_name or not attrs:
        raise AppImportError(f"{spec!r} is not MODULE:ATTRIBUTE (for example 'main:app')")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name != missing and not module_name.startswith(f"{missing}."):
            raise  # the module exists but imports something missing: show the traceback
        raise AppImportError(f"could not import module {module_name!r}") from exc
    app: object = module
    for attr in attrs.split("."):
        try:
            app = getattr(app, attr)
        except AttributeError:
            raise AppImportError(f"module {module_name!r} has no attribute {attrs!r}") from None
    if not callable(app):
        raise AppImportError(f"{spec!r} is not callable: {type(app).__name__}")
    return cast("ASGIApp", app)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m anywire`` argument parser."""
    parser = argparse.ArgumentParser(prog="python -m anywire", description="anywire tools.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve an ASGI application",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("app", metavar="APP", help="the application, as MODULE:ATTRIBUTE")
    _listening_options(serve)
    _http_options(serve)
    _websocket_options(serve)
    _app_options(serve)
    add_demo_command(commands)
    return parser


def _listening_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("listening")
    group.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    group.add_argument(
        "--port", type=int, default=8000, help="port to bind; 0 picks a free one (default: 8000)"
    )
    group.add_argument("--uds", metavar="PATH", help="listen on this Unix socket instead")
    group.add_argument(
        "--bind",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="HOST:PORT, [IPv6]:PORT or unix:PATH; repeat for several (replaces --host/--port)",
    )
    group.add_argument(
        "--backend", choices=["asyncio", "trio"], default="asyncio", help="event loop (asyncio)"
    )
    group.add_argument(
        "--certfile", metavar="PEM", help="TLS certificate chain; enables https and wss"
    )
    group.add_argument("--keyfile", metavar="PEM", help="TLS private key, if not in --certfile")
    group.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="connections served at once; more wait (default: no limit)",
    )
    group.add_argument(
        "--graceful-shutdown",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time given to requests in flight on shutdown (default: 10)",
    )


def _http_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("HTTP")
    group.add_argument(
        "--root-path",
        default="",
        metavar="PATH",
        help="ASGI root_path (the mount point behind a proxy)",
    )
    group.add_argument(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-For/-Proto and Forwarded from --forwarded-allow-ips",
    )
    group.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        metavar="IPS",
        help='comma-separated proxy addresses or networks, "*" for all (default: 127.0.0.1)',
    )
    group.add_argument(
        "--max-body-size",
        type=int,
        default=1024 * 1024,
        metavar="BYTES",
        help="largest request body, else 413; 0 for no limit (default: 1 MiB)",
    )
    group.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time to send a request head, else 408 (default: 10)",
    )
    group.add_argument(
        "--keep-alive-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="idle time before a kept-alive connection closes (default: 5)",
    )


def _websocket_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "WebSocket",
        "for ASGI websocket messages; anywire.websocket.accept() uses its own options",
    )
    group.add_argument(
        "--ws-max-message-size",
        type=int,
        default=1024 * 1024,
        metavar="BYTES",
        help="larger messages close the connection with 1009 (default: 1 MiB)",
    )
    group.add_argument(
        "--ws-ping-interval",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="keep-alive ping interval; 0 disables (default: 20)",
    )
    group.add_argument(
        "--ws-ping-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="close with 1011 when a ping gets no pong in time (default: 20)",
    )
    group.add_argument("--no-ws-compression", action="store_true", help="no permessage-deflate")


def _app_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("application and logging")
    group.add_argument(
        "--app-dir", default=".", metavar="DIR", help="directory to import APP from (default: .)"
    )
    group.add_argument(
        "--lifespan", choices=["auto", "on", "off"], default="auto", help="ASGI lifespan (auto)"
    )
    group.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="(default: info)",
    )
    group.add_argument("--no-access-log", action="store_true", help="no line per request")


def config_from(args: argparse.Namespace) -> ServerConfig:
    """The :class:`ServerConfig` the command line asks for."""
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "binds": args.bind,
        "uds": args.uds,
        "certfile": args.certfile,
        "keyfile": args.keyfile,
        "max_connections": args.max_connections,
        "graceful_shutdown": args.graceful_shutdown,
        "root_path": args.root_path,
        "proxy_headers": args.proxy_headers,
        "forwarded_allow_ips": args.forwarded_allow_ips,
        "max_body_size": args.max_body_size or None,
        "header_timeout": args.header_timeout,
        "keep_alive_timeout": args.keep_alive_timeout,
        "ws_max_message_size": args.ws_max_message_size,
        "ws_ping_interval": args.ws_ping_interval or None,
        "ws_ping_timeout": args.ws_ping_timeout,
        "ws_compression": not args.no_ws_compression,
        "lifespan": args.lifespan,
        "access_log": not args.no_access_log,
    }
    return ServerConfig(**options)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(args)
    if args.command != "serve":
        parser.print_help()
        return 2
    try:
        config = config_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.backend == "trio" and importlib.util.find_spec("trio") is None:
        return _fail("--backend trio needs trio: pip install 'anywire[trio]'")
    configure_cli_logging(args.log_level, access_log=config.access_log)
    sys.path.insert(0, os.path.abspath(args.app_dir))
    try:
        app = import_app(args.app)
    except AppImportError as exc:
        return _fail(str(exc))
    return _run(app, config, args.backend)


def _run(app: ASGIApp, config: ServerConfig, backend: str) -> int:
    try:
        run_blocking(app, config, backend=backend, on_started=_print_urls)
    except LifespanError as exc:
        return _fail(str(exc))
    except OSError as exc:  # an address in use, a missing certificate file, ...
        return _fail(f"could not start the server: {exc}")
    return 0


def _print_urls(info: ServerInfo) -> None:
    for url in info.urls:
        print(f"anywire: listening on {url}", flush=True)


def _fail(message: str) -> int:
    print(f"anywire: error: {message}", file=sys.stderr, flush=True)
    return 1
