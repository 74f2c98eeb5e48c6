"""examples/engineio_client.py runs and does what it says, against the scripted server."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

from tests.conftest import timeout
from tests.test_engineio_client import scripted_server

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).parent.parent / "examples" / "engineio_client.py"


async def run_example(url: str, backend: str, style: str) -> str:
    command = [sys.executable, str(EXAMPLE), url, "--backend", backend, "--style", style]
    with anyio.fail_after(timeout(60)):
        result = await anyio.run_process(command, check=True)
    return result.stdout.decode()


async def test_structured_style(anyio_backend_name: str) -> None:
    async with scripted_server() as server:
        out = await run_example(server.url, anyio_backend_name, "structured")
        session = server.session
        await server.wait_for(lambda: session.closed)
    assert out.splitlines() == [
        "connected on polling",
        "received 'hello'",
        "received b'\\x00binary\\xff'",
        "received '{\"json\":[1,2]}'",
        "closed: closed",
    ]
    assert session.received[-1] == "1"


async def test_seed_style(anyio_backend_name: str) -> None:
    async with scripted_server() as server:
        out = await run_example(server.url, anyio_backend_name, "seed")
    assert out.splitlines() == [
        "connected on polling",
        "received 'hello'",
        "disconnected: client disconnect",
    ]
