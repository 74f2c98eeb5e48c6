"""anywire's Engine.IO client against anywire's own Engine.IO server, on asyncio and trio.

The server is ``AsyncServer`` + ``ASGIApp`` on our runner (``serve_app``), in a cancel
scope of its own (:class:`OwnServer`): a test can stop it and start a new one on the
same port. Every ASGI scope the server sees is recorded (type, transport, client port,
headers), so tests can tell which transport carried what and where it came from.
Every transport mode, text and binary, messages near ``maxPayload``, a
server-initiated disconnect, a ping timeout (the bytes frozen by a relay), a
reconnect after the server was stopped and restarted on the same port.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import anyio
import pytest
from anyio.abc import TaskGroup, TaskStatus

import anywire.engineio as engineio
from anywire.engineio import ASGIApp, AsyncServer, exceptions
from anywire.errors import LimitExceeded
from anywire.reconnect import ReconnectPolicy
from anywire.server import ServerInfo, serve_app
from tests.conftest import timeout
from tests.engineio_helpers import echo_server
from tests.proxy_helpers import tcp_relay
from tests.server_helpers import Receive, Scope, Send

pytestmark = pytest.mark.anyio

MAX_PAYLOAD = 100_000
FAST = ReconnectPolicy(first_delay=0.0, initial_delay=0.05, max_delay=0.2, jitter=0.0)
TRANSPORTS = [None, "websocket", "polling"]  # None: polling, then the upgrade


@dataclass(frozen=True)
class Seen:
    """One HTTP request or WebSocket the server's ASGI app got."""

    type: str  # "http" or "websocket"
    scheme: str
    transport: str
    client_port: int
    headers: dict[str, str]


@dataclass
class OwnServer:
    """An echo ``AsyncServer`` on ``serve_app``, restartable on the same port.

    The message ``"disconnect me"`` makes the server disconnect the session.
    """

    tg: TaskGroup
    options: dict[str, Any]
    ssl_context: ssl.SSLContext | None = None
    port: int = 0
    eio: AsyncServer | None = None
    seen: list[Seen] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)  # the server's reasons
    #: Disconnect the session when its upgrade probe's first frame ("2probe") arrives,
    #: before the server reads it: the server closes the probe before "3probe".
    disconnect_on_probe: bool = False
    _scope: anyio.CancelScope | None = None
    _stopped: anyio.Event | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    def transports_seen(self) -> set[str]:
        return {s.transport for s in self.seen}

    async def start(self) -> None:
        self._scope, self._stopped = anyio.CancelScope(), anyio.Event()
        info: ServerInfo = await self.tg.start(self._run, self._scope, self._stopped)
        self.port = info.port

    async def stop(self) -> None:
        """Cancel the server's scope (graceful shutdown) and wait until it is gone."""
        assert self._scope is not None
        assert self._stopped is not None
        self._scope.cancel()
        with anyio.fail_after(timeout(10)):
            await self._stopped.wait()

    async def _run(
        self,
        scope: anyio.CancelScope,
        stopped: anyio.Event,
        *,
        task_status: TaskStatus[ServerInfo],
    ) -> None:
        self.eio = eio = self._echo_server()
        try:
            with scope:
                async with eio:
                    await serve_app(
                        self._app(ASGIApp(eio)),
                        "127.0.0.1",
                        self.port,
                        lifespan="off",
                        graceful_shutdown=1.0,
                        ssl_context=self.ssl_context,
                        task_status=task_status,
                    )
        finally:
            stopped.set()

    def _echo_server(self) -> AsyncServer:
        def disconnect(_sid: str, reason: str) -> None:
            self.disconnects.append(reason)

        return echo_server(disconnect, **{"max_http_buffer_size": MAX_PAYLOAD, **self.options})

    def _app(self, inner: ASGIApp) -> Callable[[Scope, Receive, Send], Any]:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] in ("http", "websocket"):
                query = parse_qs(scope["query_string"].decode())
                headers = {k.decode(): v.decode() for k, v in scope["headers"]}
                transport = query.get("transport", [""])[0]
                seen = Seen(scope["type"], scope["scheme"], transport, scope["client"][1], headers)
                self.seen.append(seen)
                if scope["type"] == "websocket" and "sid" in query and self.disconnect_on_probe:
                    # Plain ASGI (no native WebSocket extension): frames come through receive.
                    scope = {**scope, "extensions": {}}
                    receive = self._disconnecting(receive, query["sid"][0])
            await inner(scope, receive, send)

        return app

    def _disconnecting(self, receive: Receive, sid: str) -> Receive:
        async def wrapped() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "websocket.receive" and self.eio is not None:
                await self.eio.disconnect(sid)
            return message

        return wrapped


@asynccontextmanager
async def own_server(
    ssl_context: ssl.SSLContext | None = None, **options: Any
) -> AsyncIterator[OwnServer]:
    """Run an :class:`OwnServer` on a free port (read back) for the block."""
    async with anyio.create_task_group() as tg:
        server = OwnServer(tg, options, ssl_context)
        await server.start()
        yield server
        tg.cancel_scope.cancel()


async def roundtrip(client: engineio.AsyncClient, data: str | bytes) -> str | bytes:
    await client.send(data)
    with anyio.fail_after(timeout(5)):
        message: str | bytes = await client.receive()
    return message


async def upgraded(client: engineio.AsyncClient) -> None:
    """Wait until the default mode moved to the WebSocket."""
    with anyio.fail_after(timeout(5)):
        while client.transport() != "websocket":
            assert await roundtrip(client, "ping?") == "ping?"


# -- every transport mode --------------------------------------------------------------------


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_text_binary_and_messages_near_max_payload(transports: str | None) -> None:
    # The largest message each way that fits maxPayload: a polling payload carries
    # "4" + text, and binary as "b" + base64 (4/3 longer).
    text = "é" + "t" * (MAX_PAYLOAD - 10)
    blob = bytes(range(256)) * ((MAX_PAYLOAD - 10) * 3 // 4 // 256)
    async with own_server() as server:
        async with engineio.connect(server.url, transports=transports) as client:
            if transports is None:
                await upgraded(client)
            assert await roundtrip(client, "hello") == "hello"
            assert await roundtrip(client, b"\x00\xff") == b"\x00\xff"
            assert await roundtrip(client, "") == ""
            assert await roundtrip(client, text) == text
            assert await roundtrip(client, blob) == blob
            assert client.transport() == (transports or "websocket")
    expected = {"polling", "websocket"} if transports is None else {transports}
    assert server.transports_seen() == expected
    assert server.disconnects == ["client disconnect"]


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_many_messages_in_flight_keep_their_order(transports: str | None) -> None:
    # async_handlers=False: the server echoes in order (else each message is a task).
    async with (
        own_server(async_handlers=False) as server,
        engineio.connect(server.url, transports=transports) as c,
    ):
        sent = [f"m{i}" if i % 3 else f"m{i}".encode() for i in range(200)]
        async with anyio.create_task_group() as tg:

            async def send_all() -> None:
                for item in sent:
                    await c.send(item)

            tg.start_soon(send_all)
            with anyio.fail_after(timeout(10)):
                received = [await c.receive() for _ in sent]
    assert received == sent


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_a_message_over_max_payload_is_refused_at_send(transports: str | None) -> None:
    async with own_server() as server, engineio.connect(server.url, transports=transports) as c:
        if transports is None:
            await upgraded(c)
        with pytest.raises(LimitExceeded, match="maxPayload"):
            await c.send("x" * MAX_PAYLOAD)  # "4" + text: one byte too many
        assert await roundtrip(c, "still open") == "still open"


# -- the server ends the session ----------------------------------------------------------------


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_server_initiated_disconnect(transports: str | None) -> None:
    async with own_server() as server:
        reasons: list[str] = []
        async with engineio.connect(server.url, transports=transports, reconnect=FAST) as c:
            c.on("disconnect", reasons.append)
            if transports is None:
                await upgraded(c)
            await c.send("disconnect me")
            with anyio.fail_after(timeout(5)):
                assert [m async for m in c] == []
            assert c.state == "closed"
            with pytest.raises(exceptions.SocketIsClosedError):
                await c.send("late")
    # A CLOSE packet from the server: reported as such, and not reconnected.
    assert reasons == [engineio.reason.SERVER_DISCONNECT]
    assert server.disconnects == ["server disconnect"]


async def test_server_disconnect_during_the_upgrade() -> None:
    # The session ends before the probe is answered: the client stays on polling and
    # reports the server's disconnect.
    async with own_server() as server:
        server.disconnect_on_probe = True
        reasons: list[str] = []
        async with engineio.connect(server.url, reconnect=FAST) as client:
            client.on("disconnect", reasons.append)
            with anyio.fail_after(timeout(5)):
                assert [m async for m in client] == []
            assert client.state == "closed"
    assert reasons == [engineio.reason.SERVER_DISCONNECT]
    assert server.disconnects == ["server disconnect"]
    assert server.transports_seen() == {"polling", "websocket"}


# -- heartbeat ------------------------------------------------------------------------------------


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_ping_timeout_when_the_server_goes_silent(transports: str | None) -> None:
    async with own_server(ping_interval=0.3, ping_timeout=0.3) as server:
        async with tcp_relay(server.port) as relay:
            reasons: list[str] = []
            async with engineio.connect(relay.url, transports=transports) as client:
                client.on("disconnect", reasons.append)
                if transports is None:
                    await upgraded(client)
                relay.pause()  # the server is alive, but nothing reaches the client any more
                started = time.monotonic()
                with (
                    anyio.fail_after(timeout(5)),
                    pytest.raises(exceptions.SocketIsClosedError) as info,
                ):
                    await client.receive()
                elapsed = time.monotonic() - started
                assert client.state == "closed"
            assert reasons == [engineio.reason.TRANSPORT_ERROR]
            assert isinstance(info.value.__cause__, exceptions.PingTimeout)
            # The last PING came at most pingInterval before the pause.
            assert elapsed < 0.6 + timeout(0.5)


# -- reconnecting --------------------------------------------------------------------------------


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_reconnect_after_the_server_is_stopped_and_restarted(transports: str | None) -> None:
    async with own_server() as server:
        events: list[tuple[str, str | None]] = []
        lost = anyio.Event()

        def on_disconnect(why: str) -> None:
            events.append(("disconnect", why))
            lost.set()

        async with engineio.connect(server.url, transports=transports, reconnect=FAST) as c:
            c.on("connect", lambda: events.append(("connect", c.sid)))
            c.on("disconnect", on_disconnect)
            if transports is None:
                await upgraded(c)
            first_sid, port = c.sid, server.port
            assert await roundtrip(c, "before") == "before"
            await server.stop()
            with anyio.fail_after(timeout(5)):
                await lost.wait()
            assert c.state == "reconnecting"
            await c.send("while away")  # queued for the next session
            await server.start()
            assert server.port == port
            with anyio.fail_after(timeout(10)):
                assert await c.receive() == "while away"
            assert c.state == "connected"
            assert c.sid != first_sid
            if transports is None:
                await upgraded(c)
            assert await roundtrip(c, b"after") == b"after"
    assert events[0] == ("disconnect", engineio.reason.TRANSPORT_ERROR)
    assert events[1] == ("connect", events[1][1])
    assert events[-1] == ("disconnect", engineio.reason.CLIENT_DISCONNECT)
