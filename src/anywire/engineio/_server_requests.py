"""The Engine.IO server's request handling: handshake, polling GET/POST, WebSockets.

A mixin of :class:`AsyncServer` so that module stays readable; it moves bytes
between ASGI and the per-session :class:`Conn` and nothing else.
"""

from __future__ import annotations

import inspect
import json as _stdjson
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import anyio
from anyio.abc import TaskGroup

from anywire._asgi import Message, Receive, Scope
from anywire.engineio._errors import ConnectionLost, PacketError
from anywire.engineio._packets import JsonModule, Transport, decode_message
from anywire.engineio._server_conn import Conn, HandlerCall, Outbox, PollWaiter
from anywire.engineio._server_handlers import HandlerRunner
from anywire.engineio._server_http import (
    Send,
    allowed_origin,
    compress,
    cookie_header,
    cors_headers,
    error_body,
    header,
    make_environ,
    query_of,
    send_response,
)
from anywire.engineio._server_session import ServerConfig, ServerSession
from anywire.engineio._session_events import MessageReceived, RejectRequest
from anywire.errors import AnywireError, ConnectionClosed
from anywire.websocket import accept

__all__ = ["RequestHandling"]


NOT_STARTED = (
    "anywire.engineio: the AsyncServer is not running. Enter it with `async with server:` "
    "(in your framework's lifespan when the Engine.IO app is mounted) or serve ASGIApp(server) "
    "as the top-level app so that its lifespan starts it."
)


class RequestHandling:
    """Request handling; the attributes are set by :class:`AsyncServer`."""

    logger: logging.Logger
    transports: tuple[Transport, ...]
    cors_allowed_origins: Any
    cors_credentials: bool
    http_compression: bool
    compression_threshold: int
    cookie: Any
    async_handlers: bool
    max_http_buffer_size: int
    _json: JsonModule
    _config: ServerConfig
    _conns: dict[str, Conn]
    _tg: TaskGroup | None
    _runner: HandlerRunner | None
    _now: Callable[[], float]
    handlers: dict[str, Callable[..., Any]]

    def generate_id(self) -> str:
        raise NotImplementedError

    async def _trigger(self, event: str, *args: Any) -> Any:
        raise NotImplementedError

    async def _run_connect(self, conn: Conn) -> tuple[bool, Any]:
        raise NotImplementedError

    # -- entry ------------------------------------------------------------------

    async def handle_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI ``http`` or ``websocket`` request for the Engine.IO endpoint."""
        if scope["type"] == "websocket":
            await self._handle_websocket(scope, receive, send)
        elif self._tg is None:
            self.logger.error(NOT_STARTED)
            await send_response(send, 500, NOT_STARTED.encode(), [("Content-Type", "text/plain")])
        else:
            await self._handle_http(scope, receive, send)

    async def _refuse(self, send: Send, name: str, extra: list[tuple[str, str]]) -> None:
        status, body = error_body(name)
        await send_response(send, status, body, [("Content-Type", "application/json"), *extra])

    async def _handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = header(scope, "origin")
        allowed = allowed_origin(self.cors_allowed_origins, origin, scope)
        if allowed is False:
            self.logger.info("%s is not an accepted origin", origin)
            await self._refuse(send, "FORBIDDEN", [])
            return
        cors = [] if allowed is None else cors_headers(scope, origin, self.cors_credentials)
        method = scope.get("method", "GET")
        if method == "OPTIONS":
            await send_response(send, 200, b"", cors)
            return
        query = query_of(scope)
        if query.get("EIO") != "4":
            await self._refuse(send, "UNSUPPORTED_PROTOCOL_VERSION", cors)
            return
        transport = query.get("transport")
        if transport != "polling" or Transport.POLLING not in self.transports:
            name = "BAD_REQUEST" if transport == "websocket" else "UNKNOWN_TRANSPORT"
            await self._refuse(send, name, cors)
            return
        sid = query.get("sid")
        if sid is None:
            if method != "GET":
                await self._refuse(send, "BAD_HANDSHAKE_METHOD", cors)
                return
            await self._polling_handshake(scope, receive, send, cors)
            return
        conn = self._conns.get(sid)
        if conn is None:
            await self._refuse(send, "UNKNOWN_SID", cors)
        elif method == "GET":
            await self._poll(conn, receive, send, cors, scope)
        elif method == "POST" and header(scope, "content-type") == "application/octet-stream":
            await self._invalid_content(conn, send, cors)
        elif method == "POST":
            await self._post(conn, receive, send, cors)
        else:
            await self._refuse(send, "BAD_REQUEST", cors)

    # -- polling ----------------------------------------------------------------

    def _new_conn(self, transport: Transport, environ: dict[str, Any]) -> Conn:
        sid = self.generate_id()
        core = ServerSession(sid, transport, now=self._now(), config=self._config, json=self._json)
        conn = Conn(core, environ)
        conn.on_finish = self._forget
        self._conns[sid] = conn
        return conn

    def _forget(self, conn: Conn) -> None:
        if self._conns.get(conn.sid) is conn:
            del self._conns[conn.sid]

    async def _connect(self, conn: Conn) -> Any:
        """Run ``connect``; start the heartbeat. Returns None, or the refusal's data."""
        accepted, data = await self._run_connect(conn)
        if not accepted:
            conn.finished.set()
            self._forget(conn)
            return "Unauthorized" if data is None else data
        assert self._tg is not None
        self._tg.start_soon(conn.run_timer, self._run_calls)
        return None

    async def _polling_handshake(
        self, scope: Scope, receive: Receive, send: Send, cors: list[tuple[str, str]]
    ) -> None:
        conn = self._new_conn(Transport.POLLING, make_environ(scope, receive, send))
        refusal = await self._connect(conn)
        if refusal is not None:
            body = _dumps(self._json, refusal)
            await send_response(send, 401, body, [("Content-Type", "application/json"), *cors])
            return
        cookie = cookie_header(self.cookie, conn.sid)
        await self._poll(conn, receive, send, cors + ([cookie] if cookie else []), scope)

    async def _poll(
        self,
        conn: Conn,
        receive: Receive,
        send: Send,
        headers: list[tuple[str, str]],
        scope: Scope,
    ) -> None:
        events = conn.core.handle_get(self._now())
        waiter: PollWaiter | None = None
        if not any(isinstance(e, RejectRequest) for e in events):
            waiter = conn.park()
        calls, reject = conn.apply(events)
        if calls:
            await self._run_calls(conn, calls)
        if waiter is None:
            await self._reject(send, reject, headers)
            return
        if not waiter.answered:
            await self._wait_poll(conn, waiter, receive)
            if not waiter.answered:  # the client went away
                return
        body, calls = conn.poll_body(waiter)
        if calls:
            await self._run_calls(conn, calls)
        await self._send_payload(send, body, headers, scope)

    async def _wait_poll(self, conn: Conn, waiter: PollWaiter, receive: Receive) -> None:
        """Wait for the answer or for the client to leave (``answer`` cancels the wait)."""
        with anyio.CancelScope() as scope:
            waiter.scope = scope
            while (await receive()).get("type") != "http.disconnect":
                pass
        waiter.scope = None
        if not waiter.answered:
            if waiter in conn.polls:
                conn.polls.remove(waiter)
            error = ConnectionLost("poll connection closed prematurely")
            lost = conn.core.transport_lost(Transport.POLLING, self._now(), error)
            calls, _ = conn.apply(lost)
            with anyio.CancelScope(shield=True):
                await self._run_calls(conn, calls)

    async def _send_payload(
        self, send: Send, text: str, headers: list[tuple[str, str]], scope: Scope
    ) -> None:
        body = text.encode()
        out = [("Content-Type", "text/plain; charset=UTF-8"), *headers]
        if self.http_compression and len(body) >= self.compression_threshold:
            body, encoding = compress(body, header(scope, "accept-encoding"))
            if encoding:
                out.append(("Content-Encoding", encoding))
        await send_response(send, 200, body, out)

    async def _reject(
        self, send: Send, reject: RejectRequest | None, headers: list[tuple[str, str]]
    ) -> None:
        status, message = (reject.status, reject.message) if reject else (400, "Bad request")
        body = _stdjson.dumps({"code": 3, "message": message}).encode()
        await send_response(send, status, body, [("Content-Type", "application/json"), *headers])

    async def _post(
        self, conn: Conn, receive: Receive, send: Send, headers: list[tuple[str, str]]
    ) -> None:
        calls, reject = conn.apply(conn.core.begin_post(self._now()))
        if calls:
            await self._run_calls(conn, calls)
        if reject is not None:
            await self._reject(send, reject, headers)
            return
        body = await _read_body(receive, self.max_http_buffer_size + 1)
        calls, reject = conn.apply(conn.core.handle_post(body, self._now()))
        if calls:
            await self._run_calls(conn, calls)
        if reject is not None:
            await self._reject(send, reject, headers)
            return
        await send_response(send, 200, b"ok", [("Content-Type", "text/html"), *headers])

    async def _invalid_content(
        self, conn: Conn, send: Send, headers: list[tuple[str, str]]
    ) -> None:
        """v4 polling never POSTs binary content: the reference ends the session."""
        error = PacketError("invalid content")
        lost = conn.core.transport_lost(Transport.POLLING, self._now(), error)
        calls, _ = conn.apply(lost)
        await self._run_calls(conn, calls)
        await self._reject(send, RejectRequest(400, "invalid content"), headers)

    # -- WebSocket ----------------------------------------------------------------

    async def _handle_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        if first.get("type") != "websocket.connect":
            return
        query = query_of(scope)
        origin = header(scope, "origin")
        reason = None
        if self._tg is None:
            reason = NOT_STARTED
            self.logger.error(NOT_STARTED)
        elif allowed_origin(self.cors_allowed_origins, origin, scope) is False:
            reason = "Forbidden"
        elif query.get("EIO") != "4":
            reason = "Unsupported protocol version"
        elif query.get("transport") != "websocket" or Transport.WEBSOCKET not in self.transports:
            reason = "Transport unknown"
        if reason is not None:
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        replay = _Replay(first, receive)
        sid = query.get("sid")
        if sid is None:
            await self._websocket_session(scope, replay, send)
        else:
            await self._websocket_upgrade(sid, scope, replay, send)

    async def _accept(self, scope: Scope, receive: Receive, send: Send) -> Any:
        return await accept(
            asgi=(scope, receive, cast(Any, send)),  # it sends fresh dicts: MutableMappings
            allowed_origins="*",  # checked above with cors_allowed_origins
            max_message_size=self.max_http_buffer_size + 16,
            compression_threshold=self.compression_threshold,
            logger=self.logger,
        )

    async def _websocket_session(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = self._new_conn(Transport.WEBSOCKET, make_environ(scope, receive, send))
        if await self._connect(conn) is not None:
            await send({"type": "websocket.close", "code": 1008, "reason": "Unauthorized"})
            return
        outbox = conn.ws_outbox = Outbox()
        try:
            ws = await self._accept(scope, receive, send)
        except (AnywireError, OSError) as exc:
            await self._lost(conn, outbox, exc)
            return
        calls, _ = conn.apply(conn.core.writer_idle(self._now()))
        await self._run_calls(conn, calls)
        await self._ws_loop(conn, ws, outbox)

    async def _websocket_upgrade(
        self, sid: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        conn = self._conns.get(sid)
        events = [] if conn is None else conn.core.begin_upgrade(self._now())
        reject = None if conn is None else conn.apply(events)[1]
        if conn is None or reject is not None:
            message = "Session ID unknown" if conn is None else reject.message  # type: ignore[union-attr]
            await send({"type": "websocket.close", "code": 1008, "reason": message})
            return
        outbox = conn.probe_outbox = Outbox()
        try:
            ws = await self._accept(scope, receive, send)
        except (AnywireError, OSError) as exc:
            await self._lost(conn, outbox, exc)
            return
        await self._ws_loop(conn, ws, outbox)

    async def _ws_loop(self, conn: Conn, ws: Any, outbox: Outbox) -> None:
        error: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._ws_writer, conn, ws, outbox, tg.cancel_scope)
                error = await self._ws_reader(conn, ws)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await ws.close()
        await self._lost(conn, outbox, error)

    async def _ws_reader(self, conn: Conn, ws: Any) -> Exception | None:
        core, receive, now = conn.core, ws.receive, self._now
        try:
            while True:
                events = core.receive_frame(await receive(), now())
                if len(events) == 1 and events[0].__class__ is MessageReceived:  # hot path
                    pending = self._on_message(conn, events[0].data)
                    if pending is not None:
                        await self._await_handler(pending)
                    continue
                calls, _ = conn.apply(events)
                if calls:
                    await self._run_calls(conn, calls)
        except ConnectionClosed:
            return None
        except (AnywireError, OSError) as exc:
            return exc

    async def _ws_writer(self, conn: Conn, ws: Any, outbox: Outbox, scope: Any) -> None:
        """Write each batch the session hands out; one write for all its frames when
        the WebSocket can (our driver's ``send_many``; under other hosts a send each)."""
        send_many = getattr(ws, "send_many", None)
        try:
            while True:
                await outbox.wait()
                if not outbox.items:  # closing, everything written
                    break
                frames, is_batch = outbox.items.popleft()
                if send_many is not None and len(frames) > 1:
                    await send_many(frames)
                else:
                    for frame in frames:
                        await ws.send(frame)
                if is_batch and outbox is conn.ws_outbox:
                    events = conn.core.writer_idle(self._now())
                    if events:  # else nothing queued: nothing to do
                        calls, _ = conn.apply(events)
                        if calls:
                            await self._run_calls(conn, calls)
        except (AnywireError, OSError):
            pass
        scope.cancel()

    async def _lost(self, conn: Conn, outbox: Outbox, error: Exception | None) -> None:
        if outbox is not conn.ws_outbox and outbox is not conn.probe_outbox:
            return
        if outbox is conn.probe_outbox:
            conn.probe_outbox = None
        lost = conn.core.transport_lost(Transport.WEBSOCKET, self._now(), error)
        calls, _ = conn.apply(lost)
        with anyio.CancelScope(shield=True):
            await self._run_calls(conn, calls)

    async def _run_calls(self, conn: Conn, calls: list[HandlerCall]) -> None:
        for call in calls:
            if call.event == "message":
                pending = self._on_message(conn, call.arg)
                if pending is not None:
                    await self._await_handler(pending)
            else:
                await self._trigger(call.event, conn.sid, call.arg)

    def _on_message(self, conn: Conn, data: str | bytes) -> Awaitable[Any] | None:
        """Call the ``message`` handler. A sync one runs here; a coroutine goes to the
        handler runner (``async_handlers``, python-engineio's task per message) or is
        returned for the caller to await."""
        handler = self.handlers.get("message")
        if handler is None:
            return None
        try:
            result = handler(conn.sid, decode_message(data, self._json))
        except Exception:
            self.logger.exception("message handler error")
            return None
        if not inspect.isawaitable(result):
            return None
        runner = self._runner
        if self.async_handlers and runner is not None:
            runner.submit(result)
            return None
        return result

    async def _await_handler(self, pending: Awaitable[Any]) -> None:
        try:
            await pending
        except Exception:
            self.logger.exception("message handler error")


class _Replay:
    """An ASGI ``receive`` that first gives back the message already read."""

    def __init__(self, first: Message, receive: Receive) -> None:
        self._first: Message | None = first
        self._receive = receive

    async def __call__(self) -> Message:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await self._receive()


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit or not message.get("more_body", False):
            break
    return b"".join(chunks)


def _dumps(json: JsonModule, value: Any) -> bytes:
    out = json.dumps(value)
    return out.encode() if isinstance(out, str) else out
