"""The Engine.IO client against a tiny scripted server, on asyncio and trio.

The server (``ScriptedServer`` at the end of this module) is built from anywire's own
pieces: HTTP/1.1 from ``anywire._http.ServerConnection`` over
``anywire.streams.serve_tcp``, WebSocket from ``anywire.websocket.accept(stream=...)``.
The protocol is written out by hand, not with the sans-I/O core the client uses, so that
a test can script what a real or a broken server does: refuse, send garbage, stop
pinging, close, hold a POST. Real servers are in tests/interop.
"""

from __future__ import annotations

import base64
import json
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx
import pytest
from anyio.abc import TaskGroup

import anywire.engineio as engineio
from anywire._http import Request, ServerConnection
from anywire._tasks import owned_task_group
from anywire.engineio import exceptions
from anywire.errors import ConnectionClosed, LimitExceeded, ReconnectGaveUp
from anywire.reconnect import ReconnectPolicy
from anywire.streams import BufferedStream, serve_tcp
from anywire.websocket import WebSocket, accept
from tests.conftest import timeout

pytestmark = pytest.mark.anyio

FAST = ReconnectPolicy(first_delay=0.0, initial_delay=0.05, max_delay=0.1, jitter=0.0)


async def roundtrip(client: engineio.AsyncClient, data: Any) -> Any:
    await client.send(data)
    with anyio.fail_after(timeout(5)):
        return await client.receive()


# -- transports ----------------------------------------------------------------------------


@pytest.mark.parametrize("transports", [None, "polling", "websocket", ["websocket", "polling"]])
async def test_every_transport_round_trips_text_binary_and_json(transports: Any) -> None:
    async with scripted_server() as server:
        async with engineio.connect(server.url, transports=transports) as client:
            assert client.state == "connected"
            assert client.sid == server.session.sid
            assert await roundtrip(client, "hello") == "hello"
            assert await roundtrip(client, b"\x00\x01\xff") == b"\x00\x01\xff"
            assert await roundtrip(client, {"a": [1, 2]}) == '{"a":[1,2]}'
            assert await roundtrip(client, "") == ""
            if transports is None:
                await server.wait_for(lambda: client.transport() == "websocket")
            expected = "polling" if transports == "polling" else "websocket"
            assert client.transport() == expected
            assert await roundtrip(client, "after") == "after"
        session = server.session
        await server.wait_for(lambda: session.closed)
        assert session.received[-1] == "1"  # the CLOSE packet, then the transport
    assert client.state == "closed"
    assert client.sid is None
    assert client.transport() is None


async def test_upgrade_is_skipped_when_the_server_offers_none() -> None:
    async with scripted_server(upgrades=[]) as server:
        async with engineio.connect(server.url) as client:
            assert await roundtrip(client, "x") == "x"
            assert client.transport() == "polling"
    assert not any(r.is_upgrade("websocket") for r in server.requests)


async def test_one_http_client_for_polling_and_upgrade_with_headers_and_cookies() -> None:
    async with scripted_server(set_cookie="lb=node-7; Path=/") as server:
        async with engineio.connect(
            server.url, headers={"X-Custom": "42"}, engineio_path="/engine.io/"
        ) as client:
            await server.wait_for(lambda: client.transport() == "websocket")
            assert await roundtrip(client, "x") == "x"
        requests = server.requests
        assert len(requests) >= 3
        assert all(r.path == "/engine.io/" for r in requests)
        assert server.header_values("x-custom") == ["42"] * len(requests)
        # The cookie set by the handshake comes back on every later request, the upgrade too.
        assert server.header_values("cookie")[1:] == ["lb=node-7"] * (len(requests) - 1)
        assert any(r.is_upgrade("websocket") for r in requests)
        queries = [r.query_string.decode() for r in requests]
        assert all("EIO=4" in q and "&t=" in q for q in queries)


async def test_a_given_http_session_is_used_and_left_open() -> None:
    async with scripted_server() as server:
        async with httpx.AsyncClient(headers={"x-custom": "from-session"}) as http:
            async with engineio.connect(server.url, http_session=http, transports="polling") as c:
                assert await roundtrip(c, "x") == "x"
            assert not http.is_closed
        assert set(server.header_values("x-custom")) == {"from-session"}


async def test_no_timestamp_when_disabled() -> None:
    async with scripted_server() as server:
        async with engineio.connect(server.url, timestamp_requests=False, transports="polling"):
            pass
        for request in server.requests:
            assert not any(p.startswith(b"t=") for p in request.query_string.split(b"&"))


async def test_post_batches_respect_max_payload() -> None:
    async with scripted_server(max_payload=60, echo=False) as server:
        async with engineio.connect(server.url, transports="polling") as client:
            server.post_gate = anyio.Event()
            texts = [f"message-{i:02}-" + "z" * 10 for i in range(12)]
            for text in texts:
                await client.send(text)
            server.post_gate.set()
            session = server.session
            await server.wait_for(lambda: len(session.messages) == len(texts))
        assert session.messages == texts
        assert len(server.post_bodies) > 3  # batched, several per POST but never too many
        assert max(len(body) for body in server.post_bodies) <= 60
        assert any(body.count(b"\x1e") for body in server.post_bodies)


class InMemoryPolling:
    """An Engine.IO polling server as an ``httpx.MockTransport`` handler: no sockets, so
    ``wait_all_tasks_blocked`` means every request so far has been answered and read."""

    def __init__(self) -> None:
        self.posts: list[bytes] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if "sid=" not in str(request.url):
            open_data = {"sid": "s1", "upgrades": [], "pingInterval": 25000}
            body = "0" + json.dumps({**open_data, "pingTimeout": 20000, "maxPayload": 10**6})
            return httpx.Response(200, text=body)
        if request.method == "POST":
            self.posts.append(request.content)
            return httpx.Response(200, text="ok")
        await anyio.sleep_forever()  # a parked poll, cancelled when the client closes
        raise AssertionError("unreachable")


async def test_a_burst_sent_while_the_writer_is_idle_leaves_in_one_post() -> None:
    """Sends in one turn after a quiet moment share a POST (the first does not go alone),
    and POSTs go out while the poll is parked: neither waits for the other."""
    server = InMemoryPolling()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server.handle)) as http:
        async with engineio.connect("http://eio.test", http_session=http) as client:
            await client.send("first")
            await anyio.wait_all_tasks_blocked()  # answered: the writer is idle
            for text in ("a", "b", "c"):
                await client.send(text)
            await anyio.wait_all_tasks_blocked()
            assert server.posts == [b"4first", b"4a\x1e4b\x1e4c"]
    assert server.posts[-1] == b"1"


async def test_a_message_longer_than_max_payload_is_refused_at_send() -> None:
    async with scripted_server(max_payload=20) as server:
        async with engineio.connect(server.url, transports="polling") as client:
            with pytest.raises(LimitExceeded, match="maxPayload 20"):
                await client.send("x" * 50)
            assert await roundtrip(client, "small") == "small"


# -- heartbeat -------------------------------------------------------------------------------


@pytest.mark.parametrize("transports", ["polling", "websocket"])
async def test_pings_are_answered(transports: str) -> None:
    async with scripted_server(ping_interval=0.05, ping_timeout=0.5) as server:
        async with engineio.connect(server.url, transports=transports):
            session = server.session
            await server.wait_for(lambda: session.received.count("3") >= 3)


@pytest.mark.parametrize("transports", ["polling", "websocket"])
async def test_no_ping_in_time_is_a_prompt_transport_error(transports: str) -> None:
    async with scripted_server(ping_interval=0.2, ping_timeout=0.2, pings=False) as server:
        reasons: list[str] = []
        async with engineio.connect(server.url, transports=transports) as client:
            client.on("disconnect", reasons.append)
            started = time.monotonic()
            with (
                anyio.fail_after(timeout(5)),
                pytest.raises(exceptions.SocketIsClosedError) as info,
            ):
                await client.receive()
            elapsed = time.monotonic() - started
        assert reasons == [engineio.reason.TRANSPORT_ERROR]
        assert isinstance(info.value.__cause__, exceptions.PingTimeout)
        assert 0.3 < elapsed < 0.4 + timeout(0.5)


# -- closing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("transports", ["polling", "websocket"])
async def test_server_close_packet_ends_the_iteration(transports: str) -> None:
    async with scripted_server() as server:
        async with engineio.connect(server.url, transports=transports) as client:
            server.session.push("4bye", "1")
            with anyio.fail_after(timeout(5)):
                assert [m async for m in client] == ["bye"]
            assert client.state == "closed"
            with pytest.raises(exceptions.SocketIsClosedError):
                await client.send("late")


async def test_server_closing_the_session_before_answering_the_probe() -> None:
    # The server ends the session while the client upgrades: it closes the probe
    # WebSocket before "3probe". A failed probe: the client stays on polling, where
    # the CLOSE packet arrives, and reports a server disconnect.
    async with scripted_server(close_on_probe=True) as server:
        reasons: list[str] = []
        async with engineio.connect(server.url) as client:
            client.on("disconnect", reasons.append)
            with anyio.fail_after(timeout(5)):
                assert [m async for m in client] == []
            assert client.state == "closed"
        assert reasons == [engineio.reason.SERVER_DISCONNECT]
        assert any(r.is_upgrade("websocket") for r in server.requests)


@pytest.mark.parametrize("transports", ["polling", "websocket"])
async def test_leaving_the_block_on_error_or_cancel_closes_cleanly(transports: str) -> None:
    async with scripted_server() as server:
        with pytest.raises(ZeroDivisionError):
            async with engineio.connect(server.url, transports=transports):
                raise ZeroDivisionError
        first = server.session
        with anyio.move_on_after(timeout(0.2)):
            async with engineio.connect(server.url, transports=transports) as client:
                await client.receive()  # cancelled here
        second = server.session
        assert first is not second
        for session in (first, second):
            await server.wait_for(lambda s=session: s.closed)
            assert session.received[-1] == "1"


async def test_malformed_payload_is_a_transport_error_with_the_cause() -> None:
    async with scripted_server() as server:
        async with engineio.connect(server.url, transports="polling") as client:
            assert await roundtrip(client, "ok") == "ok"
            server.session.push("4lost with the payload", "zzz")
            with pytest.raises(exceptions.SocketIsClosedError) as info:
                await client.receive()
        assert isinstance(info.value.__cause__, exceptions.UnknownPacketError)


async def test_malformed_packet_on_the_websocket_is_a_transport_error_with_the_cause() -> None:
    async with scripted_server() as server:
        async with engineio.connect(server.url, transports="websocket") as client:
            assert await roundtrip(client, "ok") == "ok"
            server.session.push("9 is no packet type")
            with (
                anyio.fail_after(timeout(5)),
                pytest.raises(exceptions.SocketIsClosedError) as info,
            ):
                await client.receive()
        assert isinstance(info.value.__cause__, exceptions.UnknownPacketError)


async def test_http_error_status_on_a_poll_is_a_transport_error_with_the_status() -> None:
    async with scripted_server() as server:
        reasons: list[str] = []
        async with engineio.connect(server.url, transports="polling") as client:
            client.on("disconnect", reasons.append)
            kill_sessions(server)  # the next GET gets 400 "Session ID unknown"
            with (
                anyio.fail_after(timeout(5)),
                pytest.raises(exceptions.SocketIsClosedError) as info,
            ):
                await client.receive()
        cause = info.value.__cause__
        assert isinstance(cause, engineio.ConnectionLost)
        assert cause.status_code == 400
        assert reasons == [engineio.reason.TRANSPORT_ERROR]


# -- request_timeout --------------------------------------------------------------------------


@pytest.mark.parametrize("transports", ["polling", "websocket"])
async def test_request_timeout_bounds_the_handshake(transports: str) -> None:
    async with scripted_server() as server:
        server.handshake_gate = anyio.Event()  # never answered
        # Closing the abandoned WebSocket waits close_timeout for the silent server.
        client = engineio.AsyncClient(
            request_timeout=0.3, websocket_extra_options={"close_timeout": 0.1}
        )
        started = time.monotonic()
        with anyio.fail_after(timeout(5)), pytest.raises(exceptions.ConnectionError) as info:
            await client.connect(server.url, transports=transports)
        assert 0.25 < time.monotonic() - started < 0.3 + timeout(1)
        assert isinstance(info.value, engineio.ServerUnreachable)
        assert isinstance(info.value.__cause__, TimeoutError)
        assert client.state == "disconnected"
        server.handshake_gate.set()


async def test_request_timeout_bounds_a_post() -> None:
    async with scripted_server(echo=False) as server:
        async with engineio.connect(server.url, transports="polling", request_timeout=0.3) as c:
            server.post_gate = anyio.Event()  # POSTs are read, never answered
            await c.send("held")
            started = time.monotonic()
            with (
                anyio.fail_after(timeout(5)),
                pytest.raises(exceptions.SocketIsClosedError) as info,
            ):
                await c.receive()
            assert 0.25 < time.monotonic() - started < 0.3 + timeout(1)
            server.post_gate.set()
        assert isinstance(info.value.__cause__, httpx.TimeoutException)


# -- connecting fails ----------------------------------------------------------------------------


@pytest.mark.parametrize("transports", ["polling", "websocket"])
async def test_unreachable_server(transports: str) -> None:
    with anyio.fail_after(timeout(5)), pytest.raises(exceptions.ConnectionError) as info:
        async with engineio.connect("http://127.0.0.1:1", transports=transports):
            pass
    assert isinstance(info.value, engineio.ServerUnreachable)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("transports", ["polling", "websocket"])
async def test_refused_connection_carries_the_servers_data(transports: str) -> None:
    body = json.dumps({"message": "nope"}).encode()
    async with scripted_server(refuse=(401, body)) as server:
        client = engineio.AsyncClient()
        with pytest.raises(exceptions.ConnectionError) as info:
            await client.connect(server.url, transports=transports)
    error = info.value
    assert isinstance(error, engineio.UnexpectedStatus)
    assert error.status_code == 401
    assert error.args == ("Unexpected status code 401 in server response", {"message": "nope"})
    assert client.state == "disconnected"


@pytest.mark.parametrize("body", ["garbage", "4hello", '0{"sid": 5}', ""])
async def test_malformed_handshake(body: str) -> None:
    async with scripted_server(handshake_body=body) as server:
        with pytest.raises(exceptions.ConnectionError) as info:
            async with engineio.connect(server.url, transports="polling"):
                pass
    assert isinstance(info.value, engineio.InvalidResponse)


async def test_argument_checks() -> None:
    with pytest.raises(TypeError, match="httpx"):
        engineio.AsyncClient(http_session=object())  # type: ignore[arg-type]
    client = engineio.AsyncClient(websocket_extra_options={"http_client": None})
    with pytest.raises(TypeError, match="websocket_extra_options"):
        await client.connect("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="transports"):
        await engineio.AsyncClient().connect("http://127.0.0.1:1", transports=["carrier-pigeon"])
    with pytest.raises(ValueError, match="URL"):
        await engineio.AsyncClient().connect("ftp://127.0.0.1:1")
    with pytest.raises(ValueError, match="Invalid event"):
        client.on("nope", print)
    with pytest.raises(TypeError):
        await client.send(3)  # type: ignore[arg-type]
    with pytest.raises(exceptions.SocketIsClosedError):
        await client.send("not connected")


# -- the seed API (bare form) ---------------------------------------------------------------------


async def test_seed_bare_form_handlers_and_utilities() -> None:
    async with scripted_server() as server:
        eio = engineio.AsyncClient()
        seen: list[Any] = []
        queue = eio.create_queue()
        event = eio.create_event()

        @eio.on("connect")
        async def on_connect() -> None:
            seen.append(("connect", eio.transport()))
            await eio.send("from connect")

        def on_message(data: Any) -> None:
            seen.append(("message", data))
            if data == "stop":
                eio.start_background_task(eio.disconnect)

        eio.on("message", on_message)
        eio.on("disconnect", lambda why: seen.append(("disconnect", why)))

        async def background(tag: str) -> str:
            await queue.put(tag)
            event.set()
            return tag

        task = eio.start_background_task(background, "bg")
        await eio.connect(server.url, transports=["polling"])
        assert eio.sid == server.session.sid
        await eio.send({"a": 1})
        async with anyio.create_task_group() as tg:
            tg.start_soon(eio.wait)
            await server.wait_for(lambda: len(seen) == 3)
            server.session.push("4stop")
        assert eio.state == "closed"
        assert await task == "bg"
        assert event.is_set()
        assert queue.get_nowait() == "bg"
        with pytest.raises(eio.get_queue_empty_exception()):
            queue.get_nowait()
        await eio.sleep(0)
    assert seen == [
        ("connect", "polling"),
        ("message", "from connect"),
        ("message", {"a": 1}),  # decoded as python-engineio decodes JSON text
        ("message", "stop"),
        ("disconnect", "client disconnect"),
    ]
    assert eio.state == "closed"


async def test_seed_disconnect_before_wait_and_legacy_handler() -> None:
    async with scripted_server() as server:
        eio = engineio.AsyncClient()
        calls: list[str] = []
        eio.on("disconnect", lambda: calls.append("legacy"))  # no reason argument
        await eio.connect(server.url)
        await eio.send("queued before wait()")
        await eio.disconnect(reason="bye now")
        await eio.wait()  # returns at once: closed
        assert calls == ["legacy"]
        session = server.session
        await server.wait_for(lambda: session.closed)
        assert session.received == ["4queued before wait()", "1"]


async def test_connect_handler_failure_refuses_the_connection() -> None:
    async with scripted_server() as server:
        eio = engineio.AsyncClient()

        @eio.on("connect")
        def fail() -> None:
            raise RuntimeError("no thanks")

        with pytest.raises(exceptions.ConnectionError, match="no thanks"):
            await eio.connect(server.url, transports="polling")
        session = server.session
        await server.wait_for(lambda: session.closed)
        assert eio.state == "disconnected"


async def test_async_with_client_owns_background_tasks() -> None:
    async with scripted_server() as server:
        started = anyio.Event()

        async def forever() -> None:
            started.set()
            await anyio.sleep_forever()

        received = anyio.Event()

        async with engineio.AsyncClient() as eio:

            @eio.on("message")
            async def on_message(data: Any) -> None:
                assert data == "x"
                received.set()

            task = eio.start_background_task(forever)
            await started.wait()
            await eio.connect(server.url, transports="websocket")
            await eio.send("x")
            await received.wait()
        assert task.done()
        assert server.session.received[-1] == "1"


# -- reconnecting ----------------------------------------------------------------------------------


def kill_sessions(server: ScriptedServer) -> None:
    """Forget every session: polls get 400, the WebSocket is closed (a restarted server)."""
    for session in server.sessions:
        session.closed = True
        session.notify()
        if session.ws is not None:
            server.tg.start_soon(session.ws.close)
    server.notify()


@pytest.mark.parametrize("transports", ["polling", "websocket"])
async def test_reconnects_with_a_new_session_and_sends_the_backlog(transports: str) -> None:
    async with scripted_server(echo=False) as server:
        events: list[tuple[str, Any]] = []
        async with engineio.connect(server.url, transports=transports, reconnect=FAST) as client:
            client.on("connect", lambda: events.append(("connect", client.sid)))
            client.on("disconnect", lambda why: events.append(("disconnect", why)))
            first = server.session
            kill_sessions(server)
            await server.wait_for(
                lambda: client.state == "reconnecting" or len(server.sessions) > 1
            )
            await client.send("while away")
            await server.wait_for(lambda: len(server.sessions) == 2 and client.state == "connected")
            second = server.session
            await server.wait_for(lambda: second.messages == ["while away"])
            await client.send("again")
            await server.wait_for(lambda: second.messages == ["while away", "again"])
        assert first.sid != second.sid
        assert events == [
            ("disconnect", "transport error"),
            ("connect", second.sid),
            ("disconnect", "client disconnect"),
        ]


async def test_reconnect_gives_up_and_wait_returns() -> None:
    policy = ReconnectPolicy.from_delays([0.01, 0.01])
    async with scripted_server() as server:
        eio = engineio.AsyncClient(reconnect=policy)
        await eio.connect(server.url, transports="polling")
        server.refuse = (503, b"busy")
        kill_sessions(server)
        with anyio.fail_after(timeout(5)):
            await eio.wait()
        assert eio.state == "closed"


async def test_iteration_raises_when_the_policy_gives_up() -> None:
    policy = ReconnectPolicy.from_delays([0.01])
    async with scripted_server() as server:
        async with engineio.connect(server.url, transports="polling", reconnect=policy) as c:
            server.refuse = (503, b"busy")
            kill_sessions(server)
            with anyio.fail_after(timeout(5)), pytest.raises(ReconnectGaveUp):
                await c.receive()


async def test_no_queue_while_disconnected_raises() -> None:
    policy = ReconnectPolicy(first_delay=60.0, max_delay=60.0)
    async with scripted_server() as server:
        async with engineio.connect(
            server.url, transports="polling", reconnect=policy, queue_while_disconnected=False
        ) as client:
            kill_sessions(server)
            await server.wait_for(lambda: client.state == "reconnecting")
            with pytest.raises(exceptions.SocketIsClosedError):
                await client.send("lost?")


async def test_disconnect_during_backoff_stops_at_once() -> None:
    policy = ReconnectPolicy(first_delay=60.0, max_delay=60.0)
    async with scripted_server() as server:
        eio = engineio.AsyncClient(reconnect=policy)
        await eio.connect(server.url, transports="polling")
        async with anyio.create_task_group() as tg:
            tg.start_soon(eio.wait)
            kill_sessions(server)
            await server.wait_for(lambda: eio.state == "reconnecting")
            await eio.send("kept")
            with anyio.fail_after(timeout(1)):
                await eio.disconnect()
        assert eio.state == "closed"
        assert eio.unsent == ["kept"]


async def test_cancelling_wait_during_backoff_stops_at_once() -> None:
    policy = ReconnectPolicy(first_delay=60.0, max_delay=60.0)
    async with scripted_server() as server:
        eio = engineio.AsyncClient(reconnect=policy)
        await eio.connect(server.url, transports="websocket")
        with anyio.move_on_after(timeout(1)) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(eio.wait)
                kill_sessions(server)
                await server.wait_for(lambda: eio.state == "reconnecting")
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught
        assert eio.state == "closed"


async def test_queue_while_disconnected_is_bounded() -> None:
    policy = ReconnectPolicy(first_delay=60.0, max_delay=60.0)
    async with scripted_server() as server:
        async with engineio.connect(
            server.url, transports="polling", reconnect=policy, max_queue=6
        ) as client:
            kill_sessions(server)
            await server.wait_for(lambda: client.state == "reconnecting")
            for i in range(3):  # max_queue // 2
                await client.send(f"kept {i}")
            with pytest.raises(exceptions.QueueFull) as info:
                await client.send("one too many")
            assert info.value.limit == 3
        assert client.unsent == ["kept 0", "kept 1", "kept 2"]  # reported, not lost silently


async def test_state_is_observable_through_a_whole_life() -> None:
    async with scripted_server() as server:
        client = engineio.AsyncClient(reconnect=FAST)
        states: list[str] = [client.state]
        client.on("connect", lambda: states.append(f"on connect: {client.state}"))
        client.on("disconnect", lambda why: states.append(f"on disconnect: {client.state}"))
        server.handshake_gate = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.connect, server.url, None, "polling")
            await server.wait_for(lambda: len(server.requests) == 1)
            states.append(client.state)
            server.handshake_gate.set()
            await server.wait_for(lambda: client.state == "connected")
        states.append(client.state)
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.wait)
            kill_sessions(server)
            await server.wait_for(lambda: len(server.sessions) == 2 and client.state == "connected")
            states.append(client.state)
            await client.disconnect()
        states.append(client.state)
    assert states == [
        "disconnected",
        "connecting",
        "on connect: connected",
        "connected",
        "on disconnect: reconnecting",
        "on connect: connected",
        "connected",
        "on disconnect: closed",
        "closed",
    ]


@pytest.mark.parametrize("how", ["disconnect", "server close", "loss"])
async def test_handle_sigint_touches_no_signal_and_no_other_task(how: str) -> None:
    before = signal.getsignal(signal.SIGINT)
    cancelled: list[str] = []

    async def bystander() -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append("bystander")
            raise

    async with scripted_server(echo=False) as server:
        async with anyio.create_task_group() as tg:
            tg.start_soon(bystander)
            eio = engineio.AsyncClient(handle_sigint=True)
            await eio.connect(server.url, transports="polling")
            assert signal.getsignal(signal.SIGINT) is before
            tg.start_soon(eio.wait)
            if how == "disconnect":
                await eio.disconnect()
            elif how == "server close":
                server.session.push("1")
            else:
                kill_sessions(server)
            await server.wait_for(lambda: eio.state == "closed")
            assert cancelled == []
            tg.cancel_scope.cancel()
    assert cancelled == ["bystander"]  # by the test, not by the client
    assert signal.getsignal(signal.SIGINT) is before


async def test_cancelling_the_block_during_backoff_stops_at_once() -> None:
    policy = ReconnectPolicy(first_delay=60.0, max_delay=60.0)
    async with scripted_server() as server:
        with anyio.CancelScope() as scope:
            async with engineio.connect(server.url, transports="polling", reconnect=policy) as c:
                kill_sessions(server)
                await server.wait_for(lambda: c.state == "reconnecting")
                started = time.monotonic()
                scope.cancel()
                await anyio.sleep_forever()
        assert time.monotonic() - started < timeout(1)
        assert c.state == "closed"
        assert len(server.sessions) == 1  # no new attempt


# -- the scripted server ------------------------------------------------------------------

SEP = "\x1e"


def encode(packet: str | bytes) -> str:
    """The polling form of one packet: text as is, binary as ``b`` + base64."""
    if isinstance(packet, bytes):
        return "b" + base64.b64encode(packet).decode()
    return packet


def decode(item: str) -> str | bytes:
    return base64.b64decode(item[1:]) if item.startswith("b") else item


@dataclass
class Session:
    """One scripted session: packets to send (``"4hi"``, ``b"..."``) and what came in."""

    sid: str
    outbox: list[str | bytes] = field(default_factory=list)
    received: list[str | bytes] = field(default_factory=list)  # every packet, "4hi", "3", ...
    ws: WebSocket | None = None
    closed: bool = False
    changed: anyio.Event = field(default_factory=anyio.Event)

    def push(self, *packets: str | bytes) -> None:
        self.outbox.extend(packets)
        self.notify()

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    @property
    def messages(self) -> list[str | bytes]:
        return [
            p[1:] if isinstance(p, str) else p
            for p in self.received
            if isinstance(p, bytes) or p.startswith("4")
        ]


class ScriptedServer:
    """Serve Engine.IO on 127.0.0.1; every knob is an attribute the test may change."""

    def __init__(self, tg: TaskGroup, **options: Any) -> None:
        self.tg = tg
        self.port = 0
        self.ping_interval: float = options.pop("ping_interval", 25.0)
        self.ping_timeout: float = options.pop("ping_timeout", 20.0)
        self.max_payload: int | None = options.pop("max_payload", 1_000_000)
        self.upgrades: list[str] = options.pop("upgrades", ["websocket"])
        self.echo: bool = options.pop("echo", True)
        self.pings: bool = options.pop("pings", True)
        #: ``(status, body)`` to answer handshakes with instead of opening a session.
        self.refuse: tuple[int, bytes] | None = options.pop("refuse", None)
        #: A raw handshake body instead of the OPEN packet (malformed servers).
        self.handshake_body: str | None = options.pop("handshake_body", None)
        self.set_cookie: str | None = options.pop("set_cookie", None)
        #: Set by a test to hold POST answers until it is set.
        self.post_gate: anyio.Event | None = None
        #: Set by a test to hold handshake answers until it is set.
        self.handshake_gate: anyio.Event | None = None
        #: Close the session when the upgrade probe arrives, before answering it: the
        #: probe WebSocket is closed (code 1000), then the CLOSE packet goes to polling.
        self.close_on_probe: bool = options.pop("close_on_probe", False)
        assert not options, options
        self.sessions: list[Session] = []
        self.requests: list[Request] = []
        self.post_bodies: list[bytes] = []
        self.changed = anyio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def session(self) -> Session:
        return self.sessions[-1]

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    async def wait_for(self, predicate: Callable[[], object], seconds: float = 5) -> None:
        """Wait until ``predicate()`` is true (rechecked on every change of any session)."""
        with anyio.fail_after(timeout(seconds)):
            while not predicate():
                with anyio.move_on_after(0.05):
                    await self.changed.wait()

    def header_values(self, name: str) -> list[str | None]:
        return [request.header(name) for request in self.requests]

    # -- HTTP ---------------------------------------------------------------------------

    async def handle(self, stream: BufferedStream) -> None:
        http = ServerConnection(stream)
        while (request := await http.next_request()) is not None:
            self.requests.append(request)
            self.notify()
            query = {k: v[0] for k, v in parse_qs(request.query_string.decode()).items()}
            if request.is_upgrade("websocket") and not ("sid" not in query and self.refuse):
                headers = [(k.decode(), v.decode()) for k, v in request.headers]
                ws = await accept(stream=http.stream, headers=headers)
                await self.on_websocket(ws, query.get("sid"))
                return
            if "sid" not in query:
                await self.on_handshake(http)
            elif request.method == "GET":
                await self.on_poll(http, query["sid"])
            else:
                await self.on_post(http, query["sid"])

    def find(self, sid: str) -> Session | None:
        return next((s for s in self.sessions if s.sid == sid and not s.closed), None)

    async def on_handshake(self, http: ServerConnection) -> None:
        if self.handshake_gate is not None:
            await self.handshake_gate.wait()
        if self.refuse is not None:
            status, body = self.refuse
            await http.send_response(status, [("content-type", "application/json")], body)
            return
        session = self.open_session()
        body = self.handshake_body if self.handshake_body is not None else self.open_packet(session)
        headers = [("content-type", "text/plain; charset=UTF-8")]
        if self.set_cookie:
            headers.append(("set-cookie", self.set_cookie))
        await http.send_response(200, headers, body.encode())

    def open_session(self) -> Session:
        session = Session(sid=f"sid{len(self.sessions)}")
        self.sessions.append(session)
        self.notify()
        if self.pings:
            self.tg.start_soon(self.pinger, session)
        return session

    def open_packet(self, session: Session, upgrades: list[str] | None = None) -> str:
        data = {
            "sid": session.sid,
            "upgrades": self.upgrades if upgrades is None else upgrades,
            "pingInterval": round(self.ping_interval * 1000),
            "pingTimeout": round(self.ping_timeout * 1000),
            "maxPayload": self.max_payload,
        }
        return "0" + json.dumps(data)

    async def on_poll(self, http: ServerConnection, sid: str) -> None:
        session = self.find(sid)
        if session is None or session.ws is not None:
            await http.send_response(400, body=b'{"code":1,"message":"Session ID unknown"}')
            return
        while not session.outbox and not session.closed:
            await session.changed.wait()
        batch, session.outbox = session.outbox, []
        body = SEP.join(encode(p) for p in batch) if batch else "6"
        await http.send_response(200, [("content-type", "text/plain")], body.encode())
        if "1" in batch:
            session.closed = True
            session.notify()
            self.notify()

    async def on_post(self, http: ServerConnection, sid: str) -> None:
        body = await http.read_body()
        self.post_bodies.append(body)
        session = self.find(sid)
        if session is None:
            await http.send_response(400, body=b"unknown sid")
            return
        for item in body.decode().split(SEP):
            self.receive(session, decode(item))
        if self.post_gate is not None:
            await self.post_gate.wait()
        await http.send_response(200, [("content-type", "text/html")], b"ok")

    def receive(self, session: Session, packet: str | bytes) -> None:
        session.received.append(packet)
        if packet == "1":
            session.closed = True
        elif self.echo and (isinstance(packet, bytes) or packet.startswith("4")):
            session.push(packet)
        session.notify()
        self.notify()

    # -- WebSocket -------------------------------------------------------------------------

    async def on_websocket(self, ws: WebSocket, sid: str | None) -> None:
        if sid is None:
            if self.handshake_gate is not None:
                await self.handshake_gate.wait()
            session = self.open_session()
            session.ws = ws
            await ws.send(self.open_packet(session, upgrades=[]))
        else:
            found = self.find(sid)
            if found is None or await ws.receive() != "2probe":
                await ws.close()
                return
            session = found
            if self.close_on_probe:
                await ws.close()
                session.push("1")  # for the next GET (closed once it is sent)
                return
            await ws.send("3probe")
            session.push("6")  # release the parked GET
            if await ws.receive() != "5":
                await ws.close()
                return
        session.ws = ws
        self.notify()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.ws_writer, session, ws)
            await self.ws_reader(session, ws)
            tg.cancel_scope.cancel()
        await ws.close()

    async def ws_reader(self, session: Session, ws: WebSocket) -> None:
        try:
            async for frame in ws:
                self.receive(session, frame)
        except ConnectionClosed:
            pass
        session.closed = True
        session.notify()
        self.notify()

    async def ws_writer(self, session: Session, ws: WebSocket) -> None:
        while True:
            while not session.outbox:
                await session.changed.wait()
            batch, session.outbox = session.outbox, []
            for packet in batch:
                if packet != "6":
                    await ws.send(packet)

    async def pinger(self, session: Session) -> None:
        while not session.closed:
            await anyio.sleep(self.ping_interval)
            if self.pings and not session.closed:
                session.push("2")


@asynccontextmanager
async def scripted_server(**options: Any) -> AsyncIterator[ScriptedServer]:
    """Run a :class:`ScriptedServer` on a free port for the block."""
    async with owned_task_group() as tg:
        server = ScriptedServer(tg, **options)
        info = await tg.start(serve_tcp, server.handle)
        server.port = info.port
        yield server
        tg.cancel_scope.cancel()
