"""Every program in examples/ runs and does what it says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HAVE_TRIO

EXAMPLES = Path(__file__).parent.parent / "examples"
BACKENDS = [
    "asyncio",
    pytest.param("trio", marks=pytest.mark.skipif(not HAVE_TRIO, reason="no trio")),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_echo_example(backend: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "echo.py"), "--backend", backend],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "received 'hello'" in result.stdout
    assert "received b'\\x00binary\\xff'" in result.stdout
    assert "server stopped" in result.stdout
