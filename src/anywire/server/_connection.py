"""One accepted connection: HTTP requests in turn (keep-alive), or one WebSocket.

:func:`serve_connection` is the handler the listeners call. Each connection
runs in a cancel scope whose deadline is set when the server shuts down, and
owns a task group for the short-lived helpers of its requests (the
disconnect watcher of an ``http`` cycle). Shutdown closes a connection that
waits for its next request at once; one that serves a request finishes it
(its response says ``Connection: close``) and then closes.
"""

from __future__ import annotations

import anyio
from anyio.abc import ByteStream

from anywire._http import Request, ServerConnection
from anywire._tasks import owned_task_group
from anywire.errors import LimitExceeded, RemoteProtocolError

from ._http import HTTPCycle
from ._logging import format_address
from ._shared import ConnectionInfo, Runner
from ._websocket import WebSocketCycle

__all__ = ["serve_connection"]


async def serve_connection(runner: Runner, stream: ByteStream) -> None:
    """Serve ``stream`` until the client or the server ends the connection."""
    await Connection(runner, stream).run()


class Connection:
    """The requests of one connection, and its part in the server's shutdown."""

    def __init__(self, runner: Runner, stream: ByteStream) -> None:
        self._runner = runner
        self._http = ServerConnection(stream, limits=runner.http_limits, logger=runner.log)
        self._info = ConnectionInfo.of(stream)
        self._scope = anyio.CancelScope(deadline=runner.deadline)
        self._idle = False
        self._websocket: WebSocketCycle | None = None

    def __repr__(self) -> str:
        return f"<Connection {format_address(self._info.client)} {self._http!r}>"

    def shut_down(self, deadline: float) -> None:
        """The server stops: close now if idle, else finish by ``deadline``."""
        if self._idle:
            self._scope.cancel()
        else:
            self._scope.deadline = deadline
            if self._websocket is not None:
                self._websocket.shut_down()

    def cancel(self) -> None:
        """The server stops at once."""
        self._scope.cancel()

    async def run(self) -> None:
        self._runner.connections.add(self)
        try:
            with self._scope, self._http.idle_timeouts(self._runner.idle_watch):
                await self._serve()
        finally:
            self._runner.connections.discard(self)
            await self._http.aclose()

    async def _serve(self) -> None:
        async with owned_task_group() as tg:
            while not self._runner.stopping.is_set():
                request = await self._next_request()
                if request is None:
                    return
                if request.is_upgrade("websocket"):
                    self._websocket = WebSocketCycle(self._runner, self._http, self._info, request)
                    await self._websocket.run()
                    return
                await HTTPCycle(self._runner, self._http, self._info, tg, request).run()
                if self._http.closed:
                    return

    async def _next_request(self) -> Request | None:
        """The next request; None when the connection is over."""
        self._idle = True  # shutdown cancels the connection while it waits here
        try:
            return await self._http.next_request()
        except (RemoteProtocolError, LimitExceeded) as exc:
            self._runner.log.debug("refused a request from %r: %s", self, exc)
            return None
        finally:
            self._idle = False
