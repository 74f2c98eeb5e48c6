"""Every program in examples/ runs and does what it says."""

from __future__ import annotations

import re
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


def test_every_example_is_run_by_a_test() -> None:
    """Each examples/*.py is named by a test module that runs it.

    A quoted name (``"<name>.py"`` or ``"<name>"``) in a test file is how the
    example tests find their program (a path or ``load_example(...)``), so a
    file that no test names is run by none.
    """
    tests = Path(__file__).parent
    sources = "\n".join(
        path.read_text(encoding="utf-8")
        for path in sorted(tests.rglob("test_*.py"))
        if path != Path(__file__)
    )
    sources += Path(__file__).read_text(encoding="utf-8").split("def test_every_example")[0]
    examples = sorted(path.name for path in EXAMPLES.glob("*.py"))
    assert "echo.py" in examples
    named = {m.group(1) for m in re.finditer(r"""["']([\w.-]+?)(?:\.py)?["']""", sources)}
    assert [name for name in examples if name.removesuffix(".py") not in named] == []
