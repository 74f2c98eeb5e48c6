"""examples/asgi_app.py runs on both backends and does what it says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HAVE_TRIO, timeout

EXAMPLES = Path(__file__).parent.parent / "examples"
BACKENDS = [
    "asyncio",
    pytest.param("trio", marks=pytest.mark.skipif(not HAVE_TRIO, reason="no trio")),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_asgi_app_example(backend: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "asgi_app.py"), "--backend", backend],
        capture_output=True,
        text=True,
        timeout=timeout(60),
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("serving on http://127.0.0.1:")
    assert lines[1:] == [
        "GET /hello -> 200 {'hello': '/hello', 'started': True}",
        "WebSocket echo -> 'hi there'",
        "lifespan shutdown",
        "server stopped",
    ]
