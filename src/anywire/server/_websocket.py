"""One ASGI ``websocket`` connection over the one WebSocket driver.

The upgrade request was read by the HTTP layer; a request that is not a
valid upgrade is refused (400, 426) without calling the application. Then:

* ``websocket.connect`` is the first ``receive()``;
* ``websocket.accept`` runs the 101 handshake
  (:func:`~anywire.websocket._server.complete_handshake`) and the runner's task
  holds the :class:`WebSocket` in owned mode (reader and keep-alive tasks)
  while the application runs; ``receive``/``send``/``close`` map to the
  driver's; the application's return closes with 1000 (1011 if it raised);
* ``websocket.close`` before accepting answers 403; ``websocket.http.response.*``
  (the denial extension) sends that response instead;
* the ``anywire.websocket`` extension's ``accept`` does the handshake with the
  caller's settings and hands the driver itself to the application
  (``anywire.websocket.accept(asgi=...)`` uses it); messages are no longer
  translated, and the runner closes the driver when the application returns.

On server shutdown an open WebSocket is closed with 1001.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from anyio.abc import TaskGroup

from anywire._http import Request, ServerConnection
from anywire._tasks import owned_task_group
from anywire.errors import ConnectionClosed, InvalidHandshake
from anywire.websocket._asgi import NATIVE_EXTENSION
from anywire.websocket._connection import WebSocket
from anywire.websocket._handshake import normalize_headers, parse_client_request, split_tokens
from anywire.websocket._server import ServerSettings, complete_handshake, refuse_handshake

from ._config import Message
from ._logging import log_access
from ._shared import ClientDisconnected, ConnectionInfo, Runner

__all__ = ["WebSocketCycle"]

_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError)


class WebSocketCycle:
    """Serve one WebSocket upgrade request to the application (see the module docstring)."""

    def __init__(
        self, runner: Runner, http: ServerConnection, info: ConnectionInfo, request: Request
    ) -> None:
        self._runner = runner
        self._http = http
        self._request = request
        self.scope = runner.scope("websocket", request, info)
        self.scope["subprotocols"] = split_tokens(request.header("sec-websocket-protocol"))
        self.scope["extensions"] = {
            "websocket.http.response": {},
            NATIVE_EXTENSION: {"accept": self._native_accept},
        }
        self._stage = "connecting"  # -> accepted | handed_over | denying -> denied
        self._ws: WebSocket | None = None
        self._open: WebSocket | None = None  # accepted and run by us: the messages' fast path
        self._tg: TaskGroup | None = None
        self._connect_sent = False
        self._denial: tuple[int, list[tuple[bytes, bytes]]] | None = None
        self._denial_sent = False
        self._app_error: Exception | None = None
        self._settled = anyio.Event()  # the handshake is decided, or the application ended
        self._running = anyio.Event()  # the runner owns the accepted driver
        self._app_done = anyio.Event()

    async def run(self) -> None:
        """Check the upgrade, run the application, close what it leaves open."""
        if not await self._valid_upgrade():
            return
        async with owned_task_group() as tg:
            tg.start_soon(self._run_app)
            await self._settled.wait()
            self._tg = tg
            try:
                await self._serve_socket()
            finally:
                self._tg = None
            tg.cancel_scope.cancel()

    def shut_down(self) -> None:
        """The server stops: close an open WebSocket with 1001 (see :class:`Connection`)."""
        if self._tg is not None and self._ws is not None:
            self._tg.start_soon(self._ws.close, 1001, "server shutting down")

    async def _valid_upgrade(self) -> bool:
        headers = normalize_headers(self._request.headers)
        try:
            parse_client_request(
                self._request.method, headers, http_version=self._request.http_version
            )
        except InvalidHandshake as exc:
            self._log_access(exc.status_code or 400)
            await refuse_handshake(self._http, exc)
            return False
        return True

    async def _serve_socket(self) -> None:
        ws = self._ws
        if ws is None:
            await self._app_done.wait()
            return
        if self._runner.stopping.is_set():
            self.shut_down()
        if self._stage != "accepted":  # handed over: the application drives it
            await self._app_done.wait()
            await self._close_after_app(ws)
            return
        async with ws:
            self._open = ws
            self._running.set()
            try:
                await self._app_done.wait()
            finally:
                self._open = None
            await self._close_after_app(ws)

    async def _close_after_app(self, ws: WebSocket) -> None:
        await ws.close(1000 if self._app_error is None else 1011)

    async def _run_app(self) -> None:
        try:
            await self._runner.app(self.scope, self._receive, self._send)
        except Exception as exc:
            self._app_error = exc
            await self._app_raised(exc)
        else:
            if self._stage == "connecting":
                self._runner.log.error("ASGI application returned without accepting the WebSocket")
                await self._refuse(500)
        finally:
            self._app_done.set()
            self._settled.set()

    async def _app_raised(self, exc: Exception) -> None:
        log = self._runner.log
        if isinstance(exc, ClientDisconnected):
            log.debug("ASGI application raised after the client left: %r", exc)
        else:
            log.error("Exception in ASGI application (WebSocket)", exc_info=exc)
        if self._stage == "connecting":
            await self._refuse(500)
        elif self._stage == "denying":
            await self._http.aclose()

    # -- receive --------------------------------------------------------------------

    async def _receive(self) -> Message:
        ws = self._open
        if ws is not None:  # the fast path, once accepted
            try:
                data = await ws.receive()
            except ConnectionClosed as exc:
                return {"type": "websocket.disconnect", "code": exc.code, "reason": exc.message}
            if type(data) is str:
                return {"type": "websocket.receive", "text": data}
            return {"type": "websocket.receive", "bytes": data}
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        await self._settled.wait()
        if self._stage == "handed_over":
            raise RuntimeError("the application took the WebSocket driver: use it, not receive()")
        if self._stage != "accepted":
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        await self._running.wait()
        assert self._ws is not None
        try:
            data = await self._ws.receive()
        except ConnectionClosed as exc:
            return {"type": "websocket.disconnect", "code": exc.code, "reason": exc.message}
        if isinstance(data, str):
            return {"type": "websocket.receive", "text": data}
        return {"type": "websocket.receive", "bytes": data}

    # -- send --------------------------------------------------------------------------

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        ws = self._open
        if ws is not None and kind == "websocket.send":  # the fast path
            text = message.get("text")
            data = text if text is not None else message.get("bytes")
            if data is None:
                raise RuntimeError("websocket.send needs 'text' or 'bytes'")
            try:
                await ws.send(data)
            except ConnectionClosed as exc:
                raise ClientDisconnected(f"the WebSocket is closed ({exc.code})") from exc
            return
        if kind == "websocket.accept":
            await self._accept(message)
        elif kind == "websocket.send":
            await self._send_data(message)
        elif kind == "websocket.close":
            await self._close(message)
        elif kind == "websocket.http.response.start":
            self._deny_start(message)
        elif kind == "websocket.http.response.body":
            await self._deny_body(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in a WebSocket cycle")

    async def _accept(self, message: Message) -> None:
        self._expect("connecting", "websocket.accept")
        headers = normalize_headers(message.get("headers") or [])
        subprotocol = message.get("subprotocol")
        await self._handshake(subprotocol, headers, self._runner.ws_settings, None, "accepted")
        await self._running.wait()

    async def _native_accept(
        self,
        subprotocol: str | None,
        extra_headers: Sequence[tuple[str, str]],
        settings: ServerSettings,
        ws_class: type[WebSocket] | None,
    ) -> WebSocket:
        self._expect("connecting", "accept()")
        return await self._handshake(
            subprotocol, list(extra_headers), settings, ws_class, "handed_over"
        )

    async def _handshake(
        self,
        subprotocol: str | None,
        extra_headers: list[tuple[str, str]],
        settings: ServerSettings,
        ws_class: type[WebSocket] | None,
        stage: str,
    ) -> WebSocket:
        try:
            ws = await complete_handshake(
                self._http,
                self._request,
                settings,
                subprotocol,
                extra_headers,
                ws_class=ws_class or WebSocket,
            )
        except _GONE as exc:
            self._stage = "denied"
            self._settled.set()
            raise ClientDisconnected("the client left during the handshake") from exc
        self._ws, self._stage = ws, stage
        self._log_access(101)
        self._settled.set()
        return ws

    async def _send_data(self, message: Message) -> None:
        if self._stage == "connecting":
            raise RuntimeError("websocket.send before websocket.accept")
        if self._stage != "accepted" or self._ws is None:
            raise ClientDisconnected("the WebSocket is not open")
        text = message.get("text")
        data: Any = text if text is not None else message.get("bytes")
        if data is None:
            raise RuntimeError("websocket.send needs 'text' or 'bytes'")
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise ClientDisconnected(f"the WebSocket is closed ({exc.code})") from exc

    async def _close(self, message: Message) -> None:
        if self._stage == "connecting":
            await self._refuse(403)
        elif self._stage == "accepted" and self._ws is not None:
            await self._ws.close(int(message.get("code") or 1000), message.get("reason") or "")

    def _deny_start(self, message: Message) -> None:
        self._expect("connecting", "websocket.http.response.start")
        self._stage = "denying"
        headers = [(bytes(n), bytes(v)) for n, v in message.get("headers", ())]
        self._denial = (int(message["status"]), [*headers, (b"connection", b"close")])

    async def _deny_body(self, message: Message) -> None:
        self._expect("denying", "websocket.http.response.body")
        assert self._denial is not None
        status, headers = self._denial
        more = bool(message.get("more_body", False))
        try:
            if not self._denial_sent:
                self._denial_sent = True
                self._log_access(status)
                await self._http.start_response(status, headers)
            await self._http.send_body(bytes(message.get("body", b"")))
            if not more:
                await self._http.end_response()
        except _GONE as exc:
            raise ClientDisconnected("the client disconnected") from exc
        finally:
            if not more:
                self._stage = "denied"
                self._settled.set()

    async def _refuse(self, status: int) -> None:
        self._stage = "denied"
        self._settled.set()
        self._log_access(status)
        try:
            await self._http.send_error(status)
        except _GONE:
            return

    def _expect(self, stage: str, what: str) -> None:
        if self._stage != stage:
            raise RuntimeError(f"{what} is not allowed now (the WebSocket is {self._stage})")

    def _log_access(self, status: int) -> None:
        if self._runner.config.access_log:
            request = self._request
            log_access(
                self.scope["client"], request.method, request.target, request.http_version, status
            )
