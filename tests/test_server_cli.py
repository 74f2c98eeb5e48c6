"""``python -m anywire serve``: run as a real process, stopped with signals."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from anywire.server._cli import AppImportError, build_parser, config_from, import_app

from .conftest import timeout

ROOT = Path(__file__).parent.parent
LISTENING = re.compile(r"anywire: listening on (http://127\.0\.0\.1:\d+)")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "anywire", *args]


class Server:
    """A CLI server process and the URL it printed."""

    def __init__(self, process: Process, url: str, output: list[str]) -> None:
        self.process = process
        self.url = url
        self.output = output

    async def stop(self, signum: signal.Signals) -> int:
        self.process.send_signal(signum)
        with anyio.fail_after(timeout(15)):
            return await self.process.wait()

    async def wait_for_log(self, text: str) -> None:
        """Read stderr until ``text`` shows up."""
        assert self.process.stderr is not None
        seen = ""
        with anyio.fail_after(timeout(15)):
            async for chunk in TextReceiveStream(self.process.stderr):
                seen += chunk
                if text in seen:
                    return
        raise AssertionError(f"{text!r} not logged: {seen}")


@asynccontextmanager
async def cli_server(*args: str) -> AsyncIterator[Server]:
    process = await anyio.open_process(command("serve", *args), cwd=ROOT)
    async with process:
        assert process.stdout is not None
        output: list[str] = []
        with anyio.fail_after(timeout(20)):
            async for text in TextReceiveStream(process.stdout):
                output.append(text)
                if match := LISTENING.search("".join(output)):
                    break
            else:
                raise AssertionError(f"no listening line: {output}")
        try:
            yield Server(process, match[1], output)
        finally:
            if process.returncode is None:
                process.kill()


@pytest.mark.anyio
async def test_serve_and_exit_cleanly_on_sigint(anyio_backend_name: str) -> None:
    args = ["tests.server_helpers:hello_app", "--port", "0", "--backend", anyio_backend_name]
    async with cli_server(*args) as server:
        async with httpx.AsyncClient() as client:
            response = await client.get(server.url)
        assert response.text == "hello"
        assert await server.stop(signal.SIGINT) == 0


@pytest.mark.anyio
async def test_sigterm_also_stops_gracefully() -> None:
    async with cli_server("tests.server_helpers:hello_app", "--port", "0") as server:
        assert await server.stop(signal.SIGTERM) == 0


@pytest.mark.anyio
async def test_second_sigint_exits_at_once(anyio_backend_name: str) -> None:
    args = ["tests.server_helpers:slow_app", "--port", "0", "--graceful-shutdown", "60"]
    async with cli_server(*args, "--backend", anyio_backend_name) as server:
        port = int(server.url.rsplit(":", 1)[1])
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            await server.wait_for_log("slow request started")
            # the first signal waits for /slow (up to 60 s); the second one does not
            server.process.send_signal(signal.SIGINT)
            await server.wait_for_log("shutting down gracefully")
            assert await server.stop(signal.SIGINT) == 0


def test_lifespan_startup_failure_exits_1() -> None:
    result = subprocess.run(
        command("serve", "tests.server_helpers:failing_startup_app", "--port", "0"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(30),
        check=False,
    )
    assert result.returncode == 1
    assert "database unreachable" in result.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.server_helpers", "is not MODULE:ATTRIBUTE"),
        ("tests.no_such_module:app", "could not import module"),
        ("tests.server_helpers:missing", "has no attribute"),
    ],
)
def test_bad_app_spec_exits_1(spec: str, message: str) -> None:
    result = subprocess.run(
        command("serve", spec),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(30),
        check=False,
    )
    assert result.returncode == 1
    assert message in result.stderr


def test_help_reads_well() -> None:
    result = subprocess.run(
        command("serve", "--help"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(30),
        check=True,
    )
    out = result.stdout
    assert out.startswith("usage: python -m anywire serve")
    for option in (
        "--host",
        "--port",
        "--uds",
        "--backend",
        "--certfile",
        "--keyfile",
        "--root-path",
        "--proxy-headers",
        "--forwarded-allow-ips",
        "--graceful-shutdown",
        "--log-level",
        "MODULE:ATTRIBUTE",
    ):
        assert option in out
    top = subprocess.run(command(), cwd=ROOT, capture_output=True, text=True, check=False)
    assert top.returncode == 2
    assert "serve" in top.stdout


def test_import_app_and_config_from_arguments() -> None:
    from tests.server_helpers import hello_app

    assert import_app("tests.server_helpers:hello_app") is hello_app
    with pytest.raises(AppImportError):
        import_app("tests.server_helpers:Running.port.fget.nothing")
    args = build_parser().parse_args(
        [
            "serve",
            "m:app",
            "--bind",
            "[::1]:9000",
            "--max-body-size",
            "0",
            "--ws-ping-interval",
            "0",
            "--proxy-headers",
            "--forwarded-allow-ips",
            "10.0.0.0/8,127.0.0.1",
        ]
    )
    config = config_from(args)
    assert config.binds == ["[::1]:9000"]
    assert config.max_body_size is None
    assert config.ws_ping_interval is None
    assert config.proxy_headers
    assert config.forwarded_allow_ips == "10.0.0.0/8,127.0.0.1"
