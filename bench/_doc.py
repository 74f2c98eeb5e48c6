"""Generated sections of ``docs/benchmarks.md``: one per benchmark suite.

Each suite (``run.py`` for WebSocket servers, ``http_run.py`` for the ASGI runner, ...)
owns the text between its two markers and replaces only that, so the suites can run
separately and the hand-written parts of the page stay as they are::

    <!-- begin generated: websocket (bench/run.py) -->
    ...
    <!-- end generated: websocket -->
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"


def markers(name: str, script: str) -> tuple[str, str]:
    return f"<!-- begin generated: {name} ({script}) -->", f"<!-- end generated: {name} -->"


def write_section(name: str, script: str, generated: str) -> None:
    """Replace suite ``name``'s section of docs/benchmarks.md (append it if missing)."""
    begin, end = markers(name, script)
    block = f"{begin}\n\n{generated.strip()}\n\n{end}"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    prefix = f"<!-- begin generated: {name} "
    if prefix in text and end in text:
        head, rest = text.split(prefix, 1)
        tail = rest.split(end, 1)[1]
        text = f"{head}{block}{tail}"
    else:
        text = f"{text.rstrip()}\n\n{block}\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    print(f"wrote section {name!r} of {DOC.relative_to(ROOT)}")
