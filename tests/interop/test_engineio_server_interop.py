"""anywire's Engine.IO server against the official node ``engine.io-client``, on asyncio and trio.

The server runs on our runner in this process; ``node/eio_client.js`` connects
with every transport mode, exchanges text, binary and a message near
``maxPayload``, and reports its events as JSON lines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from anywire.engineio import ASGIApp, AsyncServer
from tests.conftest import timeout
from tests.engineio_helpers import echo_server
from tests.interop.conftest import SCRIPTS, NodePeers, stop_process
from tests.server_helpers import running

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

MAX_PAYLOAD = 10_000


async def eventually(predicate: Any, seconds: float = 5) -> None:
    """Wait until ``predicate()`` is true (state with no event to wait on)."""
    with anyio.fail_after(timeout(seconds)):
        while not predicate():  # noqa: ASYNC110 - polling server state in a test
            await anyio.sleep(0.01)


def recording_echo_server() -> tuple[AsyncServer, list[tuple[str, str]]]:
    """The echo server and the ``(sid, reason)`` of each session that ended."""
    disconnects: list[tuple[str, str]] = []
    eio = echo_server(
        lambda sid, reason: disconnects.append((sid, reason)), max_http_buffer_size=MAX_PAYLOAD
    )
    return eio, disconnects


async def run_client(node: NodePeers, url: str, *args: str) -> list[dict[str, Any]]:
    command = [node.executable, str(SCRIPTS / "eio_client.js"), url, *args]
    with anyio.fail_after(timeout(30)):
        result = await anyio.run_process(
            command, env=node.env, stdin=subprocess.DEVNULL, check=False
        )
    stdout = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0, f"{stdout}\n{result.stderr.decode('utf-8', 'replace')}"
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.mark.parametrize("transports", ["default", "websocket", "polling"])
async def test_node_client_echo(node: NodePeers, transports: str) -> None:
    eio, disconnects = recording_echo_server()
    near_max = str(MAX_PAYLOAD - 100)
    async with eio, running(ASGIApp(eio)) as server:
        events = await run_client(node, server.url, transports, "echo", near_max)
        await eventually(lambda: disconnects)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "open", events
    assert kinds[-1] == "close", events
    first = "websocket" if transports == "websocket" else "polling"
    assert events[0]["transport"] == first
    assert events[0]["handshake"]["maxPayload"] == MAX_PAYLOAD
    assert events[0]["handshake"]["pingInterval"] == 25000
    # async_handlers=True (the default) runs each message handler in its own task, so the
    # echoes may come back in any order, as with python-engineio.
    messages = sorted((e for e in events if e["event"] == "message"), key=json.dumps)
    assert messages == sorted(
        [
            {"event": "message", "data": "hello"},
            {"event": "message", "base64": "AQID"},
            {"event": "message", "data": "x" * int(near_max)},
        ],
        key=json.dumps,
    )
    upgrades = [e["transport"] for e in events if e["event"] == "upgrade"]
    assert upgrades == (["websocket"] if transports == "default" else [])
    assert events[-1]["reason"] == "forced close"
    # engine.io-client's close() sends a CLOSE packet on polling, only closes a WebSocket.
    reason = "client disconnect" if transports == "polling" else "transport close"
    assert disconnects == [(events[0]["sid"], reason)]


@pytest.mark.parametrize("transports", ["default", "websocket", "polling"])
async def test_node_client_server_disconnect(node: NodePeers, transports: str) -> None:
    eio, disconnects = recording_echo_server()
    async with eio, running(ASGIApp(eio)) as server:
        events = await run_client(node, server.url, transports, "server-close")
    assert events[-1] == {"event": "close", "reason": "transport close"}
    assert disconnects == [(events[0]["sid"], "server disconnect")]


@pytest.mark.parametrize("transports", ["websocket", "polling"])
async def test_node_client_that_stops_answering_is_timed_out(
    node: NodePeers, transports: str
) -> None:
    eio = AsyncServer(ping_interval=0.2, ping_timeout=0.3, shutdown_timeout=0.5)
    disconnects: list[tuple[str, str, float]] = []

    @eio.on("disconnect")
    def disconnect(sid: str, reason: str) -> None:
        disconnects.append((sid, reason, anyio.current_time()))

    command = [node.executable, str(SCRIPTS / "eio_client.js")]
    async with eio, running(ASGIApp(eio)) as server:
        process = await anyio.open_process(
            [*command, server.url, transports, "hold"], env=node.env, stderr=None
        )
        try:
            assert process.stdout is not None
            stdout = BufferedByteReceiveStream(process.stdout)
            with anyio.fail_after(timeout(10)):
                opened = json.loads(await stdout.receive_until(b"\n", 1 << 16))
            await anyio.sleep(0.5)  # a few heartbeats answered
            assert disconnects == []
            os.kill(process.pid, signal.SIGSTOP)
            stopped = anyio.current_time()
            await eventually(lambda: disconnects)
        finally:
            await stop_process(process)
    sid, reason, when = disconnects[0]
    assert (sid, reason) == (opened["sid"], "ping timeout")
    assert when - stopped < 0.2 + 0.3 + timeout(0.2)


async def test_node_client_against_uvicorn(node: NodePeers, anyio_backend_name: str) -> None:
    if anyio_backend_name != "asyncio":
        pytest.skip("uvicorn runs on asyncio only")
    import socket

    import uvicorn

    eio, disconnects = recording_echo_server()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(ASGIApp(eio), lifespan="on", log_level="warning"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        await eventually(lambda: server.started)
        url = f"http://127.0.0.1:{port}"
        for transports in ("default", "websocket", "polling"):
            events = await run_client(node, url, transports, "echo", "5000")
            assert len([e for e in events if e["event"] == "message"]) == 3, events
        events = await run_client(node, url, "default", "server-close")
        assert events[-1] == {"event": "close", "reason": "transport close"}
        server.should_exit = True
    sock.close()
    assert len(disconnects) == 4
