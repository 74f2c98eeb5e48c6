"""examples/engineio_server.py serves what it says, on both backends, with our client."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import anyio
import pytest

import anywire.engineio as engineio
from tests.conftest import timeout
from tests.server_helpers import running

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).parent.parent / "examples" / "engineio_server.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("engineio_server_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_example_echoes_and_says_bye(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example()
    async with running(example.app, lifespan="on") as server:
        async with engineio.connect(server.url) as client:
            await client.send("hello")
            with anyio.fail_after(timeout(5)):
                assert await client.receive() == "hello"
            sid = client.sid
            assert sid is not None
            assert (await example.eio.get_session(sid))["count"] == 1
            # "bye" at once: the server may end the session during the upgrade.
            await client.send("bye")
            with anyio.fail_after(timeout(5)):
                await client.wait()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"connect {sid} from 127.0.0.1")
    assert out[-1] == f"disconnect {sid}: server disconnect"
