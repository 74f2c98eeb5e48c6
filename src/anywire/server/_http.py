"""One ASGI ``http`` request/response cycle over the HTTP/1.1 layer.

``receive()`` streams the request body as ``http.request`` messages (read
only when the application asks, so ``100 Continue`` goes out then); once the
body is complete it waits for the client to go away (a watcher task in the
connection's task group runs ``wait_disconnected``) or for the response to
end, and returns ``http.disconnect``.

``send()`` holds the response head back until the first body message, so a
response with a single body goes out in one write with a ``Content-Length``;
with ``more_body`` it is chunked (HTTP/1.1) unless the application set a
length. During shutdown the head gets ``Connection: close``. A send after the
client left raises :class:`ClientDisconnected` (an ``OSError``).

An application that raises before the head went out gets a 500 for the
client and a traceback in the log; after that, the connection is closed.
"""

from __future__ import annotations

import anyio
from anyio.abc import TaskGroup

from anywire._http import Request, ServerConnection
from anywire._http._request import has_header
from anywire.errors import LimitExceeded, LocalProtocolError, RemoteProtocolError

from ._config import Message
from ._logging import log_access
from ._shared import ClientDisconnected, ConnectionInfo, Runner

__all__ = ["HTTPCycle"]

_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError)
_BODY_ERRORS = (RemoteProtocolError, LimitExceeded, *_GONE)


class HTTPCycle:
    """Serve one request to the application (see the module docstring)."""

    def __init__(
        self,
        runner: Runner,
        http: ServerConnection,
        info: ConnectionInfo,
        tg: TaskGroup,
        request: Request,
    ) -> None:
        self._runner = runner
        self._http = http
        self._tg = tg
        self._request = request
        self.scope = runner.scope("http", request, info)
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._started = False
        self._head_sent = False
        self._complete = False
        self._body_read = False
        self._gone = False
        # Made when receive() first waits past the body (most requests never do):
        self._over: anyio.Event | None = None  # the response completed or the client left
        self._watcher: anyio.CancelScope | None = None
        self._watcher_done: anyio.Event | None = None

    async def run(self) -> None:
        """Call the application, then make sure the client got a whole response."""
        error: Exception | None = None
        try:
            await self._runner.app(self.scope, self.receive, self.send)
        except Exception as exc:
            error = exc
        finally:
            await self._stop_watching()
        if error is not None:
            await self._app_raised(error)
        elif not self._complete:
            await self._app_returned_early()

    # -- receive ------------------------------------------------------------------

    async def receive(self) -> Message:
        if self._complete or self._gone:
            return {"type": "http.disconnect"}
        if not self._body_read:
            return await self._read_body()
        if self._over is None:
            self._over = anyio.Event()
            self._watcher = anyio.CancelScope()
            self._watcher_done = anyio.Event()
            self._tg.start_soon(self._watch, self._watcher, self._watcher_done)
        await self._over.wait()
        return {"type": "http.disconnect"}

    async def _read_body(self) -> Message:
        try:
            chunk = b"" if self._http.body_complete else await self._http.receive_body()
        except _BODY_ERRORS as exc:
            self._client_gone()
            if isinstance(exc, LimitExceeded):
                self._log_access(413)
            self._runner.log.debug("request body not received: %r", exc)
            return {"type": "http.disconnect"}
        more = not self._http.body_complete
        self._body_read = not more
        return {"type": "http.request", "body": chunk, "more_body": more}

    async def _watch(self, scope: anyio.CancelScope, done: anyio.Event) -> None:
        """Watch for the client leaving; never raises into the connection's task group."""
        try:
            with scope:
                await self._http.wait_disconnected()
                self._client_gone()
        except Exception as exc:  # the connection is unusable: treat it as gone
            self._runner.log.debug("watching for a disconnect failed: %r", exc)
            self._client_gone()
        finally:
            done.set()

    async def _stop_watching(self) -> None:
        if self._watcher is not None and self._watcher_done is not None:
            self._watcher.cancel()
            await self._watcher_done.wait()

    def _client_gone(self) -> None:
        self._gone = True
        self._wake()

    def _wake(self) -> None:
        """Let a receive() waiting past the body return ``http.disconnect``."""
        if self._over is not None:
            self._over.set()

    # -- send -------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._start(message)
        elif kind == "http.response.body":
            await self._body(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in an HTTP cycle")

    def _start(self, message: Message) -> None:
        if self._started:
            raise RuntimeError("http.response.start sent twice")
        self._started = True
        self._status = int(message["status"])
        self._headers = [(bytes(n), bytes(v)) for n, v in message.get("headers", ())]

    async def _body(self, message: Message) -> None:
        if not self._started:
            raise RuntimeError("http.response.body sent before http.response.start")
        if self._complete:
            raise RuntimeError("http.response.body sent after the response completed")
        if self._gone:
            raise ClientDisconnected("the client disconnected")
        body = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        try:
            await self._write(body, more)
        except _GONE as exc:
            self._client_gone()
            raise ClientDisconnected("the client disconnected") from exc
        if not more:
            self._complete = True
            self._wake()

    async def _write(self, body: bytes, more: bool) -> None:
        http = self._http
        if self._head_sent:
            await http.send_body(body)
            if not more:
                await http.end_response()
            return
        self._head_sent = True
        headers = self._response_headers()
        self._log_access(self._status)
        if not more and not self._head_without_length(headers):
            await http.send_response(self._status, headers, body)
            return
        await http.start_response(self._status, headers)
        await http.send_body(body)
        if not more:
            await http.end_response()

    def _head_without_length(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """A HEAD response without Content-Length: let h11 frame it as GET would be."""
        return self._request.method == "HEAD" and not has_header(headers, b"content-length")

    def _response_headers(self) -> list[tuple[bytes, bytes]]:
        headers = self._headers
        names = {name.lower() for name, _ in headers}
        config = self._runner.config
        if config.date_header and b"date" not in names:
            headers.append((b"date", self._runner.date.value()))
        if config.server_header and b"server" not in names:
            headers.append((b"server", b"anywire"))
        if self._runner.stopping.is_set():
            headers.append((b"connection", b"close"))
        return headers

    # -- after the application ---------------------------------------------------------

    async def _app_raised(self, exc: Exception) -> None:
        log = self._runner.log
        if self._gone or isinstance(exc, ClientDisconnected):
            log.debug("ASGI application raised after the client left: %r", exc)
            await self._http.aclose()
        elif not self._head_sent:
            log.error("Exception in ASGI application", exc_info=exc)
            await self._send_500()
        else:
            log.error("Exception in ASGI application after the response started", exc_info=exc)
            await self._http.aclose()

    async def _app_returned_early(self) -> None:
        if self._gone:
            await self._http.aclose()
        elif not self._head_sent:
            self._runner.log.error("ASGI application returned without sending a response")
            await self._send_500()
        else:
            self._runner.log.error("ASGI application returned before completing the response")
            await self._http.aclose()

    async def _send_500(self) -> None:
        self._log_access(500)
        try:
            await self._http.send_error(500, "Internal Server Error")
        except (*_GONE, LocalProtocolError):
            await self._http.aclose()

    def _log_access(self, status: int) -> None:
        if self._runner.config.access_log:
            request = self._request
            log_access(
                self.scope["client"], request.method, request.target, request.http_version, status
            )
