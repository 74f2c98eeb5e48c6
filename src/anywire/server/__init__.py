"""The ASGI runner: any ASGI 3 application over HTTP/1.1 and WebSocket, on asyncio or trio.

Blocking, with signal handling::

    anywire.serve(app, "127.0.0.1", 8000, backend="trio")

Inside your own task group (port 0 picks a free port)::

    async with anyio.create_task_group() as tg:
        info = await tg.start(anywire.serve_app, app, "127.0.0.1", 0)
        print(info.urls)
        ...
        tg.cancel_scope.cancel()   # graceful shutdown

From the command line: ``python -m anywire serve module:app --port 8000``.
See ``docs/server.md``.
"""

from __future__ import annotations

from anywire.server._config import ServerConfig as ServerConfig
from anywire.server._config import ServerOptions as ServerOptions
from anywire.server._lifespan import LifespanError as LifespanError
from anywire.server._run import Server as Server
from anywire.server._run import ServerInfo as ServerInfo
from anywire.server._run import serve as serve
from anywire.server._run import serve_app as serve_app
from anywire.server._shared import ClientDisconnected as ClientDisconnected

__all__ = [
    "ClientDisconnected",
    "LifespanError",
    "Server",
    "ServerConfig",
    "ServerInfo",
    "ServerOptions",
    "serve",
    "serve_app",
]
