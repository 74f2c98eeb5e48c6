"""The seed libraries' examples, rewritten in examples/seed_*.py, run and do what they say.

Each example is imported and its async entry points are called on both
backends (fast, precise output checks); then each file also runs as a program
(``python examples/seed_*.py --port 0``, ``--backend trio``), servers printing
the port they bound and stopping on SIGINT. The aio examples are checked in
tests/test_aio_seed.py with the helpers of this module.
"""

from __future__ import annotations

import importlib.util
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process

import anywire.engineio as engineio
from anywire.streams import BufferedStream
from tests.conftest import timeout

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).parent.parent / "examples"


def load_example(filename: str) -> ModuleType:
    """Import ``examples/<filename>`` as a fresh module (its module-level state is new)."""
    path = EXAMPLES / filename
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def serving(main: Callable[..., Any], **options: Any) -> AsyncIterator[int]:
    """Run an example server's ``main("127.0.0.1", 0)`` for the block; give its port.

    Leaving the block cancels it: a graceful shutdown, so every handler has
    finished (and printed) when the block is left.
    """
    with anyio.fail_after(timeout(20)):
        async with anyio.create_task_group() as tg:
            port = await tg.start(partial(main, "127.0.0.1", 0, **options))
            yield port
            tg.cancel_scope.cancel()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- running the files as programs ----------------------------------------------------------


async def run_program(filename: str, *args: str, backend: str) -> list[str]:
    """Run ``python examples/<filename> *args --backend <backend>``; its stdout lines."""
    command = [sys.executable, str(EXAMPLES / filename), *args, "--backend", backend]
    with anyio.fail_after(timeout(30)):
        result = await anyio.run_process(command, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().splitlines()


@asynccontextmanager
async def server_program(filename: str, *args: str, backend: str) -> AsyncIterator[list[str]]:
    """Start ``examples/<filename> --port 0``, read the port it prints, SIGINT it at the end.

    Yields a list: the printed URL first (``listening on <url>``); the lines the
    program printed afterwards are appended once it exited with status 0.
    """
    command = [sys.executable, "-u", str(EXAMPLES / filename), "--host", "127.0.0.1"]
    command += ["--port", "0", *args, "--backend", backend]
    async with await anyio.open_process(command) as process:
        try:
            assert process.stdout is not None
            stdout = BufferedStream(process.stdout)
            with anyio.fail_after(timeout(20)):
                first = (await stdout.read_until(b"\n")).decode()
            match = re.fullmatch(r"listening on (\S+)\n", first)
            assert match, first
            lines = [match.group(1)]
            yield lines
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(timeout(20)):
                rest = await _read_all(stdout)
                assert await process.wait() == 0, await _stderr(process)
            lines += rest.decode().splitlines()
        finally:
            if process.returncode is None:
                process.kill()


async def _read_all(stream: BufferedStream) -> bytes:
    data = b""
    while chunk := await stream.read():
        data += chunk
    return data


async def _stderr(process: Process) -> str:
    assert process.stderr is not None
    return (await _read_all(BufferedStream(process.stderr))).decode()


def server_lines(lines: Sequence[str], prefixes: tuple[str, ...]) -> list[str]:
    return [line for line in lines if line.startswith(prefixes)]


# --- simple-websocket ----------------------------------------------------------------------

SW_SERVER = "seed_simple_websocket_asgi_server.py"
SW_CLIENT = "seed_simple_websocket_client.py"
SW_CONTEXT = "seed_simple_websocket_context_manager.py"
SW_SOCKET = "seed_simple_websocket_socket_server.py"


@pytest.mark.parametrize("route", ["/ws", "/ws-seed"])
@pytest.mark.parametrize("style", ["client_example", "client_example_seed"])
async def test_simple_websocket_client_and_asgi_server(
    style: str, route: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server, client = load_example(SW_SERVER), load_example(SW_CLIENT)
    async with serving(server.main) as port:
        await getattr(client, style)(f"ws://127.0.0.1:{port}{route}")
    assert capsys.readouterr().out.splitlines() == [
        f"listening on ws://127.0.0.1:{port}/ws",
        "Server response: Echo: Hello, Async Server!",
        "Binary response: b'Binary data'",
        "Client disconnected",
    ]


@pytest.mark.parametrize("style", ["client_example", "client_example_seed"])
async def test_simple_websocket_client_reports_failures(
    style: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server, client = load_example(SW_SERVER), load_example(SW_CLIENT)
    with anyio.fail_after(timeout(10)):
        await getattr(client, style)(f"ws://127.0.0.1:{closed_port()}/ws")
    assert capsys.readouterr().out.startswith("Failed to connect: could not connect to ws://")
    async with serving(server.main) as port:  # a path the server does not route: 403
        await getattr(client, style)(f"ws://127.0.0.1:{port}/nowhere")
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/")
    assert capsys.readouterr().out.splitlines()[1:] == [
        "Failed to connect: server refused the WebSocket upgrade with HTTP 403"
    ]
    assert response.status_code == 404
    assert response.text == "WebSocket endpoints: /ws and /ws-seed\n"


@pytest.mark.parametrize("server_style", ["custom_socket_server", "custom_socket_server_seed"])
@pytest.mark.parametrize("style", ["context_manager_example", "context_manager_example_seed"])
async def test_simple_websocket_context_manager_and_socket_server(
    style: str, server_style: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server, client = load_example(SW_SOCKET), load_example(SW_CONTEXT)
    async with serving(getattr(server, server_style)) as port:
        await getattr(client, style)(f"ws://127.0.0.1:{port}/")
        await getattr(client, style)(f"ws://127.0.0.1:{port}/")  # the seed's loop: next client
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"listening on ws://127.0.0.1:{port}/"
    reply = ["Response: Received: Hello with context manager!", "closed with code 1000"]
    assert server_lines(lines, ("Response", "closed")) == reply * 2
    disconnected = server_lines(lines, ("Client",))
    assert len(disconnected) == 2
    for line in disconnected:
        assert re.fullmatch(r"Client \('127\.0\.0\.1', \d+\) disconnected", line), line


async def test_simple_websocket_programs(anyio_backend_name: str) -> None:
    backend = anyio_backend_name
    async with server_program(SW_SERVER, backend=backend) as server:
        url = server[0]
        seed = await run_program(SW_CLIENT, url, "--style", "seed", backend=backend)
        structured = await run_program(SW_CONTEXT, url, backend=backend)
    assert seed == [
        "Server response: Echo: Hello, Async Server!",
        "Binary response: b'Binary data'",
    ]
    assert structured == ["Response: Echo: Hello with context manager!", "closed with code 1000"]
    assert server[1:] == ["Client disconnected"] * 2

    async with server_program(SW_SOCKET, "--style", "seed", backend=backend) as server:
        seed = await run_program(SW_CONTEXT, server[0], "--style", "seed", backend=backend)
        structured = await run_program(SW_CLIENT, server[0] + "ws", backend=backend)
    assert seed == ["Response: Received: Hello with context manager!", "closed with code 1000"]
    assert structured == [
        "Server response: Received: Hello, Async Server!",
        "Binary response: \"Received: b'Binary data'\"",
    ]
    assert len(server_lines(server, ("Client",))) == 2


async def test_simple_websocket_structured_socket_server_program(anyio_backend_name: str) -> None:
    async with server_program(SW_SOCKET, backend=anyio_backend_name) as server:
        out = await run_program(SW_CONTEXT, server[0], backend=anyio_backend_name)
    assert out == ["Response: Received: Hello with context manager!", "closed with code 1000"]
    assert len(server_lines(server, ("Client",))) == 1


# --- python-engineio ------------------------------------------------------------------------

EIO_SERVER = "seed_engineio_server.py"
EIO_CLIENT = "seed_engineio_client.py"

CLIENT_LINES = [
    "Connection request",
    "Received message:  Echo: hello",
    "Received message:  Echo: response",
]


@pytest.mark.parametrize("sync_connect", [False, True], ids=["async_connect", "sync_connect"])
@pytest.mark.parametrize("style", ["main", "main_seed"])
async def test_engineio_client_and_server(
    style: str, sync_connect: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    server, client = load_example(EIO_SERVER), load_example(EIO_CLIENT)
    async with serving(server.main, sync_connect=sync_connect) as port:
        await getattr(client, style)(f"http://127.0.0.1:{port}")
    lines = capsys.readouterr().out.splitlines()
    ending = "disconnected: closed" if style == "main" else "disconnected: client disconnect"
    client_lines = server_lines(lines, ("Connection", "Received message", "disconnected"))
    assert client_lines == [*CLIENT_LINES, ending]
    connected = server_lines(lines, ("Client",))
    match = re.fullmatch(r"Client (\S+) connected( \(sync\))?", connected[0])
    assert match
    assert bool(match.group(2)) == sync_connect
    assert connected[1:] == [f"Client {match.group(1)} disconnected"]
    assert server_lines(lines, ("Received:",)) == ["Received: hello", "Received: response"]


async def test_engineio_server_sessions() -> None:
    server = load_example(EIO_SERVER)
    async with serving(server.main) as port:
        async with engineio.connect(f"http://127.0.0.1:{port}") as client:
            for n in (1, 2):
                await client.send(f"message {n}")
                with anyio.fail_after(timeout(5)):
                    assert await client.receive() == f"Echo: message {n}"
            assert client.sid is not None
            assert await server.eio.get_session(client.sid) == {
                "user_id": 123,
                "preferences": {"theme": "dark"},
                "messages": 2,
            }


async def test_engineio_programs(anyio_backend_name: str) -> None:
    backend = anyio_backend_name
    async with server_program(EIO_SERVER, "--sync-connect", backend=backend) as server:
        seed = await run_program(EIO_CLIENT, server[0], "--style", "seed", backend=backend)
        structured = await run_program(EIO_CLIENT, server[0], backend=backend)
    assert seed == [*CLIENT_LINES, "disconnected: client disconnect"]
    assert structured == [*CLIENT_LINES, "disconnected: closed"]
    assert len(server_lines(server, ("Client",))) == 4
    assert all(line.endswith("connected (sync)") for line in server_lines(server, ("Client",))[::2])
