"""The demo page in a real browser: headless Chromium, two tabs, messages both ways.

The demo app runs here on the test's backend (asyncio, trio) with the official
``engine.io-client`` browser build taken from the interop node packages (through
the demo's cache folder); ``node/demo_browser.js`` drives Debian's chromium with
playwright-core. Without chromium the test skips, except on CI, where it fails.

``ANYWIRE_DEMO_SCREENSHOT=docs/_static/demo.png`` keeps tab A's screenshot
there (how the docs' picture is made).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import anyio
import pytest

from anywire._demo import ENGINEIO_CLIENT_VERSION, client_path, create_app, ensure_client
from tests.conftest import timeout
from tests.interop.conftest import SCRIPTS, NodePeers, installed_version, unavailable
from tests.server_helpers import running

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
RTT = re.compile(r"^\d+(\.\d+)? ms$")


def browser_build(node: NodePeers, cache: Path) -> Path:
    """Put the interop packages' ``engine.io.min.js`` where the demo's cache keeps it."""
    version = installed_version(node.node_modules, "engine.io-client")
    assert version == ENGINEIO_CLIENT_VERSION, "package.json and the demo pin one version"
    if installed_version(node.node_modules, "playwright-core") is None:
        unavailable(f"playwright-core is not installed in {node.node_modules}")
    target = client_path(cache)
    target.parent.mkdir(parents=True)
    shutil.copyfile(node.node_modules / "engine.io-client" / "dist" / "engine.io.min.js", target)
    return ensure_client(cache)  # cached: no npm


async def run_browser(
    node: NodePeers, chromium: Path, url: str, screenshot: Path
) -> dict[str, object]:
    command = [node.executable, str(SCRIPTS / "demo_browser.js"), url, str(screenshot)]
    env = {**node.env, "CHROMIUM": str(chromium)}
    with anyio.fail_after(timeout(90)):
        result = await anyio.run_process(command, env=env, stdin=subprocess.DEVNULL, check=False)
    stdout = result.stdout.decode("utf-8", "replace").strip()
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, f"demo_browser.js failed:\n{stdout}\n{stderr[-3000:]}"
    report: dict[str, object] = json.loads(stdout.splitlines()[-1])
    return report


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.is_file():
        unavailable(f"{CHROMIUM} is missing (Debian: apt-get install chromium)")
    return CHROMIUM


async def test_two_tabs_chat_over_websocket(
    node: NodePeers, chromium: Path, tmp_path: Path
) -> None:
    app = create_app(browser_build(node, tmp_path / "cache"))
    screenshot = Path(os.environ.get("ANYWIRE_DEMO_SCREENSHOT") or tmp_path / "demo.png")
    async with running(app, lifespan="on") as server:
        report = await run_browser(node, chromium, f"{server.url}/", screenshot)
    assert report["ok"] is True
    assert report["errors"] == []
    pages = report["pages"]
    assert isinstance(pages, dict)
    ann, bob = pages["A"], pages["B"]
    lines = ["Ann: hello from Ann", "Bob: hi Ann, Bob here"]
    assert ann["log"] == ["you joined as Ann", "Bob joined", *lines]
    assert bob["log"] == ["you joined as Bob", *lines]
    for page in (ann, bob):
        assert page["state"] == "connected"
        assert page["transport"] == "websocket"
        assert page["online"] == "2"
        assert RTT.match(page["rtt"]), page["rtt"]
    png = await anyio.Path(screenshot).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
