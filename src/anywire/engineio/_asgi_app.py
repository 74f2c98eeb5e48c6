"""``ASGIApp``: python-engineio's ASGI application, whose lifespan runs the server."""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from anywire.engineio._server import AsyncServer
from anywire.engineio._server_http import Send, send_response

__all__ = ["ASGIApp"]

Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Scope = Mapping[str, Any]

_CONTENT_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".json": "application/json",
    ".txt": "text/plain",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}


class ASGIApp:
    """Serve ``engineio_server`` at ``/engineio_path/``; everything else goes to
    ``other_asgi_app`` or ``static_files`` (python-engineio's rules), else 404.

    As the top-level app, its lifespan enters ``async with engineio_server:``
    and runs ``on_startup``/``on_shutdown`` (sync or async). Mounted inside
    another framework (which does not pass lifespan to mounted apps), enter
    the server in the outer app's lifespan instead.
    """

    def __init__(
        self,
        engineio_server: AsyncServer,
        other_asgi_app: Any = None,
        static_files: Mapping[str, Any] | None = None,
        engineio_path: str = "engine.io",
        on_startup: Callable[[], Any] | None = None,
        on_shutdown: Callable[[], Any] | None = None,
    ) -> None:
        self.engineio_server = engineio_server
        self.other_asgi_app = other_asgi_app
        self.static_files = dict(static_files or {})
        self.engineio_path = engineio_path.strip("/")
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.lifespan(scope, receive, send)
        elif kind in ("http", "websocket") and self._is_engineio(scope):
            await self.engineio_server.handle_request(scope, receive, send)
        elif self.other_asgi_app is not None:
            await self.other_asgi_app(scope, receive, send)
        elif kind == "http" and await self.serve_static_file(scope, send):
            return
        elif kind == "http":
            await self.not_found(send)
        else:
            await send({"type": "websocket.close", "code": 1000})

    def _is_engineio(self, scope: Scope) -> bool:
        path = scope.get("path", "/")
        if not self.engineio_path:
            return True
        prefix = "/" + self.engineio_path
        return bool(path == prefix or path.startswith(prefix + "/"))

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Enter the server for the app's life; run ``on_startup`` and ``on_shutdown``."""
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        try:
            async with self.engineio_server:
                try:
                    await _call(self.on_startup)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
                await _call(self.on_shutdown)
        except Exception as exc:
            await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})

    async def serve_static_file(self, scope: Scope, send: Send) -> bool:
        """python-engineio's static files: exact paths, then directory prefixes."""
        if scope.get("method") != "GET":
            return False
        found = _static_lookup(self.static_files, scope.get("path", "/"))
        if found is None:
            return False
        filename, content_type = found
        try:
            with open(filename, "rb") as f:  # noqa: ASYNC230 - small static files
                body = f.read()
        except OSError:
            return False
        await send_response(send, 200, body, [("Content-Type", content_type)])
        return True

    async def not_found(self, send: Send) -> None:
        await send_response(send, 404, b"Not Found", [("Content-Type", "text/plain")])


def _static_lookup(static_files: Mapping[str, Any], path: str) -> tuple[str, str] | None:
    rest = ""
    match = static_files.get(path)
    if match is None:
        for prefix in sorted(static_files, key=len, reverse=True):
            if (prefix.endswith("/") and path.startswith(prefix)) or path.startswith(prefix + "/"):
                rest = path[len(prefix.rstrip("/")) + 1 :]
                match = static_files[prefix]
                break
        else:
            return None
    if isinstance(match, str):
        match = {"filename": match}
    filename: str = match["filename"]
    if rest:
        if ".." in rest.split("/"):
            return None
        filename = os.path.join(filename, rest)
    if os.path.isdir(filename) or filename.endswith("/"):
        filename = os.path.join(filename, "index.html")
    content_type = match.get("content_type") or _CONTENT_TYPES.get(
        os.path.splitext(filename)[1], "application/octet-stream"
    )
    return filename, content_type


async def _call(func: Callable[[], Any] | None) -> None:
    if func is not None:
        result = func()
        if inspect.isawaitable(result):
            await result
