"""anywire's Engine.IO client against real servers, on asyncio and trio.

Peers: the reference server, npm ``engine.io`` (``node/eio_server.js``), and
python-engineio's ``AsyncServer`` under uvicorn (``PY_SERVER`` below, run in a
subprocess). Every transport mode, text and binary, large messages, a
server-initiated disconnect, a refused connection; with node also a ping timeout
(the server stopped with SIGSTOP), a reconnect after the server was killed and
restarted on the same port, cookies and headers on every request, and the seed's
client usage example.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import anywire.engineio as engineio
from anywire.engineio import exceptions
from anywire.reconnect import ReconnectPolicy
from tests.conftest import timeout
from tests.interop.conftest import NodePeers, NodeServer, installed_version, stop_process

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

TRANSPORTS = ["polling", "websocket", None]  # None: polling, then the upgrade
MAX_PAYLOAD = 100_000

#: python-engineio's AsyncServer as an ASGI app under uvicorn; prints its port first.
PY_SERVER = r"""
import socket, sys
import engineio, uvicorn

options = dict(arg.split("=", 1) for arg in sys.argv[1:])
eio = engineio.AsyncServer(
    async_mode="asgi",
    ping_interval=float(options.get("ping_interval", 25)),
    ping_timeout=float(options.get("ping_timeout", 20)),
    max_http_buffer_size=int(options.get("max_http_buffer_size", 1000000)),
)

@eio.on("connect")
def connect(sid, environ):
    if "refuse=1" in environ.get("QUERY_STRING", ""):
        return False

@eio.on("message")
async def message(sid, data):
    if data == "disconnect me":
        await eio.disconnect(sid)
    else:
        await eio.send(sid, data)

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(128)  # connections wait in the backlog until uvicorn serves
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(engineio.ASGIApp(eio), log_level="warning", lifespan="off")
uvicorn.Server(config).run(sockets=[sock])
"""


@asynccontextmanager
async def python_server(*args: str) -> AsyncIterator[str]:
    """Run python-engineio under uvicorn; yield its URL."""
    pytest.importorskip("engineio")
    pytest.importorskip("uvicorn")
    command = [sys.executable, "-c", PY_SERVER, *args]
    process = await anyio.open_process(command, stderr=None)
    try:
        assert process.stdout is not None
        stdout = BufferedByteReceiveStream(process.stdout)
        with anyio.fail_after(timeout(20)):
            port = int(await stdout.receive_until(b"\n", 64))
        yield f"http://127.0.0.1:{port}"
    finally:
        await stop_process(process)


def eio_args(**options: Any) -> list[str]:
    return [f"--{name}={value}" for name, value in options.items()]


@asynccontextmanager
async def node_server(node: NodePeers, *args: str) -> AsyncIterator[NodeServer]:
    if installed_version(node.node_modules, "engine.io") is None:
        pytest.skip("engine.io is not installed in the interop node_modules")
    async with node.server(*args, script="eio_server.js") as server:
        yield server


@asynccontextmanager
async def any_server(peer: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The node or python server (the ``node`` fixture only for node: python needs no node)."""
    if peer == "node":
        node: NodePeers = request.getfixturevalue("node")
        args = eio_args(maxHttpBufferSize=MAX_PAYLOAD)
        async with node_server(node, *args) as server:
            yield f"http://127.0.0.1:{server.port}"
    else:
        async with python_server(f"max_http_buffer_size={MAX_PAYLOAD}") as url:
            yield url


async def next_event(server: NodeServer, name: str) -> dict[str, Any]:
    while (event := await server.next_event())["event"] != name:
        pass
    return event


async def roundtrip(client: engineio.AsyncClient, data: str | bytes) -> str | bytes:
    await client.send(data)
    with anyio.fail_after(timeout(10)):
        message = await client.receive()
    assert isinstance(message, str | bytes)
    return message


# -- every transport, text, binary, large messages -----------------------------------------------


@pytest.mark.parametrize("peer", ["node", "python"])
@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_messages_on_every_transport(
    peer: str, transports: str | None, request: pytest.FixtureRequest
) -> None:
    async with any_server(peer, request) as url:
        async with engineio.connect(url, transports=transports) as client:
            assert await roundtrip(client, "hello") == "hello"
            assert await roundtrip(client, "héllo ✓ 🎉") == "héllo ✓ 🎉"
            assert await roundtrip(client, b"\x00\x01\xfe\xff") == b"\x00\x01\xfe\xff"
            big_text = "x" * (MAX_PAYLOAD - 10)  # "4" + data fits maxPayload
            assert await roundtrip(client, big_text) == big_text
            big_binary = bytes(range(256)) * ((MAX_PAYLOAD - 10) * 3 // 4 // 256)  # base64 fits
            assert await roundtrip(client, big_binary) == big_binary
            for i in range(20):  # many small ones, batched on polling
                await client.send(f"n{i}")
            with anyio.fail_after(timeout(10)):
                assert [await client.receive() for _ in range(20)] == [f"n{i}" for i in range(20)]
            if transports is None:
                with anyio.fail_after(timeout(10)):
                    while client.transport() != "websocket":
                        await roundtrip(client, "until upgraded")
            assert client.transport() == (transports or "websocket")


@pytest.mark.parametrize("peer", ["node", "python"])
@pytest.mark.parametrize("transports", ["polling", "websocket"])
async def test_server_initiated_disconnect(
    peer: str, transports: str, request: pytest.FixtureRequest
) -> None:
    reasons: list[str] = []
    async with any_server(peer, request) as url:
        eio = engineio.AsyncClient()
        eio.on("disconnect", reasons.append)
        got = anyio.Event()
        eio.on("message", lambda data: got.set())
        await eio.connect(url, transports=transports)
        with anyio.fail_after(timeout(10)):
            async with anyio.create_task_group() as tg:
                tg.start_soon(eio.wait)
                await eio.send("ping")  # once echoed, the next GET is (most likely) parked
                await got.wait()
                await eio.send("disconnect me")
    # The node server closes a WebSocket without a CLOSE packet: that reads as a loss.
    # python-engineio's server forgets a polling session at once: its CLOSE packet reaches
    # the client only if a GET is parked then; else the next GET gets 400 (a loss).
    if peer == "node" and transports == "websocket":
        assert reasons == ["transport error"]
    elif peer == "python" and transports == "polling":
        assert reasons in (["server disconnect"], ["transport error"])
    else:
        assert reasons == ["server disconnect"]
    assert eio.state == "closed"


async def test_refused_by_python_engineio_with_its_data() -> None:
    async with python_server() as url:
        with pytest.raises(exceptions.ConnectionError) as info:
            async with engineio.connect(url + "/?refuse=1"):
                pass
    assert info.value.args == ("Unexpected status code 401 in server response", "Unauthorized")
    assert isinstance(info.value, engineio.UnexpectedStatus)


async def test_refused_by_node_with_its_data(node: NodePeers) -> None:
    async with node_server(node, "--transports=polling") as server:
        url = f"http://127.0.0.1:{server.port}"
        with pytest.raises(exceptions.ConnectionError) as info:
            await engineio.AsyncClient().connect(url, transports="websocket")
    error = info.value
    assert isinstance(error, engineio.UnexpectedStatus)
    assert error.status_code == 400
    assert error.data == {"code": 0, "message": "Transport unknown"}


# -- node only: cookies, ping timeout, reconnect -------------------------------------------------


async def test_cookies_and_headers_reach_every_request(node: NodePeers) -> None:
    async with node_server(node, "--cookie", "--log-requests") as server:
        url = f"http://127.0.0.1:{server.port}"
        events: list[dict[str, Any]] = []

        async def read_until(name: str) -> None:
            while (event := await server.next_event())["event"] != name:
                events.append(event)
            events.append(event)

        async with engineio.connect(url, headers={"X-Custom": "42"}) as client:
            await read_until("upgrade")
            assert await roundtrip(client, "x") == "x"
        await read_until("close")
    sid = next(e["sid"] for e in events if e["event"] == "connection")
    requests = [e for e in events if e["event"] == "request"]
    assert requests
    assert {r["transport"] for r in requests} == {"polling", "websocket"}
    assert all(r["custom"] == "42" for r in requests)
    assert requests[0]["cookie"] is None  # the handshake sets it
    assert all(r["cookie"] == f"io={sid}" for r in requests[1:])


@contextlib.contextmanager
def stopped(pid: int | None) -> Any:
    """SIGSTOP the process for the block; SIGCONT it afterwards whatever happens."""
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("transports", ["polling", "websocket"])
async def test_ping_timeout_when_the_server_is_stopped(node: NodePeers, transports: str) -> None:
    reasons: list[str] = []
    args = eio_args(pingInterval=300, pingTimeout=200)
    async with node_server(node, *args) as server:
        url = f"http://127.0.0.1:{server.port}"
        async with engineio.connect(url, transports=transports) as client:
            client.on("disconnect", reasons.append)
            assert await roundtrip(client, "x") == "x"
            await anyio.sleep(0.35)  # let a ping arrive (the clock of the deadline starts there)
            with stopped(server.pid):
                started = time.monotonic()
                with anyio.fail_after(timeout(5)), pytest.raises(exceptions.SocketIsClosedError):
                    await client.receive()
                elapsed = time.monotonic() - started
    assert reasons == ["transport error"]
    assert elapsed < 0.5 + timeout(0.5)  # pingInterval + pingTimeout after the last ping


@pytest.mark.parametrize("transports", ["polling", "websocket", None])
async def test_reconnect_after_kill_and_restart(node: NodePeers, transports: str | None) -> None:
    events: list[str] = []
    policy = ReconnectPolicy(first_delay=0.05, initial_delay=0.1, max_delay=0.2, jitter=0.0)
    async with node_server(node) as server:
        port = server.port
        url = f"http://127.0.0.1:{port}"
        eio = engineio.AsyncClient(reconnect=policy)
        eio.on("connect", lambda: events.append("connect"))
        lost = anyio.Event()

        @eio.on("disconnect")
        def on_disconnect(why: str) -> None:
            events.append(f"disconnect: {why}")
            lost.set()

        received: list[Any] = []
        got = anyio.Event()

        @eio.on("message")
        def on_message(data: Any) -> None:
            received.append(data)
            got.set()

        await eio.connect(url, transports=transports)
        first_sid = eio.sid
        async with anyio.create_task_group() as tg:
            tg.start_soon(eio.wait)
            assert server.pid is not None
            os.kill(server.pid, signal.SIGKILL)
            with anyio.fail_after(timeout(10)):
                await lost.wait()
            assert eio.state == "reconnecting"
            await eio.send("sent while away")
            async with node_server(node, f"--port={port}") as restarted:
                with anyio.fail_after(timeout(10)):
                    await next_event(restarted, "connection")
                    await got.wait()
                assert eio.state == "connected"
                assert eio.sid != first_sid
                await eio.disconnect()
    assert received == ["sent while away"]
    assert events == [
        "connect",
        "disconnect: transport error",
        "connect",
        "disconnect: client disconnect",
    ]


# -- the seed's client usage example, with the import changed -----------------------------------


async def test_seed_usage_example(node: NodePeers, capsys: pytest.CaptureFixture[str]) -> None:
    """The seed doc's two snippets. Changed: the import (``anywire.engineio``), the URL
    (our server), ``Client()`` is ``AsyncClient()`` (the seed's async page says
    ``engineio.Client()`` by mistake), the handlers come before ``connect()`` (so that
    ``connect`` fires), and the message handler is ``async`` to ``await
    eio.send('response')``: an async client's send is a coroutine, in python-engineio too.
    Then ``wait()`` runs until the test disconnects."""
    import anywire.engineio as engineio

    async with node_server(node) as server:
        url = f"http://127.0.0.1:{server.port}"

        eio = engineio.AsyncClient()

        # as a decorator:
        @eio.on("connect")
        def connect_handler() -> None:
            print("Connection request")

        # as a method:
        async def message_handler(msg: Any) -> None:
            print("Received message: ", msg)
            await eio.send("response")

        eio.on("message", message_handler)

        await eio.connect(url)

        await eio.send("hello")
        async with anyio.create_task_group() as tg:
            tg.start_soon(eio.wait)
            with anyio.fail_after(timeout(10)):
                while (await next_event(server, "message"))["data"] != "response":
                    pass
            await eio.disconnect()
    out = capsys.readouterr().out
    assert "Connection request" in out
    assert "Received message:  hello" in out


async def test_binary_payload_base64_matches_node(node: NodePeers) -> None:
    """What node decoded from our base64 (polling) is the bytes we sent."""
    async with node_server(node) as server:
        url = f"http://127.0.0.1:{server.port}"
        async with engineio.connect(url, transports="polling") as client:
            await client.send(b"\x00\xff" * 10)
            event = await next_event(server, "message")
    assert base64.b64decode(event["base64"]) == b"\x00\xff" * 10
