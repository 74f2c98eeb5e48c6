"""``ASGIApp``: python-engineio's ASGI application, whose lifespan runs the server."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from anywire._asgi import Receive, Scope
from anywire.engineio._server import AsyncServer
from anywire.engineio._server_http import Send, send_response

__all__ = ["ASGIApp"]


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

    As the top-level app, its lifespan enters ``async with engineio_server:``,
    forwards the lifespan to ``other_asgi_app`` and runs ``on_startup``/
    ``on_shutdown`` (sync or async). Mounted inside
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
        """Enter the server for the app's life and forward the lifespan to ``other_asgi_app``.

        Startup: the server, then ``other_asgi_app``'s startup, then
        ``on_startup``; shutdown in reverse. A failure is reported as
        ``lifespan.startup.failed``/``lifespan.shutdown.failed`` with its
        message. An ``other_asgi_app`` that raises or returns without answering
        does not support lifespan (ASGI spec): the server goes on without it.
        """
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        other = _OtherLifespan(self.other_asgi_app, scope, self.engineio_server.logger)
        failure: str | None = None
        started = False
        try:
            async with other, self.engineio_server, anyio.create_task_group() as tg:
                tg.start_soon(other.run)
                failure = await other.ask("startup") or await _failure_of(self.on_startup)
                if failure is None:
                    started = True
                    await send({"type": "lifespan.startup.complete"})
                    await receive()  # lifespan.shutdown
                    failure = await _failure_of(self.on_shutdown)
                failure = await other.ask("shutdown") or failure
                tg.cancel_scope.cancel()
        except Exception as exc:
            failure = failure or str(exc) or repr(exc)
        stage = "shutdown" if started else "startup"
        if failure is None:
            await send({"type": f"lifespan.{stage}.complete"})
        else:
            await send({"type": f"lifespan.{stage}.failed", "message": failure})

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


async def _failure_of(func: Callable[[], Any] | None) -> str | None:
    """Run a sync or async hook; its exception's message, or None."""
    if func is None:
        return None
    try:
        result = func()
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        return str(exc) or repr(exc)
    return None


class _OtherLifespan:
    """``other_asgi_app``'s lifespan, driven by ours through two one-slot channels."""

    def __init__(self, app: Any, scope: Scope, logger: logging.Logger) -> None:
        self.app = app
        self.scope = scope
        self.logger = logger
        self._to_app, self._app_inbox = anyio.create_memory_object_stream[dict[str, Any]](1)
        self._app_outbox, self._replies = anyio.create_memory_object_stream[Mapping[str, Any]](1)

    async def __aenter__(self) -> _OtherLifespan:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._to_app.close()
        self._replies.close()

    async def run(self) -> None:
        with self._app_inbox, self._app_outbox:
            if self.app is None:
                return
            try:
                await self.app(dict(self.scope), self._app_inbox.receive, self._app_outbox.send)
            except Exception:
                self.logger.info("other_asgi_app's lifespan raised", exc_info=True)

    async def ask(self, stage: str) -> str | None:
        """Send ``lifespan.<stage>``; the failure message, or None (done, or no lifespan)."""
        try:
            await self._to_app.send({"type": f"lifespan.{stage}"})
            reply = await self._replies.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return None
        if reply.get("type") == f"lifespan.{stage}.failed":
            return str(reply.get("message") or f"other_asgi_app's {stage} failed")
        return None
