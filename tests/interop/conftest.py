"""Node peers for the interop suite: the ``node`` fixture and its child processes.

``node`` (session-scoped) finds the node executable and a ``node_modules`` folder
holding the ``ws`` version pinned in ``tests/interop/package.json``:

* ``ANYWIRE_NODE_MODULES`` when set (``nox -s interop`` sets it);
* else a cache filled here with ``npm install``: ``.nox/.cache/interop-node`` (the
  folder the nox session uses) when ``.nox`` exists, else
  ``$XDG_CACHE_HOME/anywire-interop`` (``~/.cache/anywire-interop``). An install that
  already holds every pinned package (``ws``, ``engine.io``) is reused without running npm.

Without node, npm or the packages, the node tests skip, except on CI (``CI`` set), where
they fail: CI never silently skips its proof.

Child processes get ``NODE_PATH`` pointing at that folder. ``ws_server.js`` listens on
port 0 and prints its port as its first stdout line; ``node.server()`` reads it back and
kills the process on exit. ``node.client()`` runs ``ws_client.js`` to completion.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from tests.conftest import timeout

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SCRIPTS = HERE / "node"
ON_CI = os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}

Event = dict[str, Any]


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail on CI, where a missing peer is a broken machine."""
    if ON_CI:
        pytest.fail(f"{reason} (CI is set: interop peers must be present)", pytrace=False)
    pytest.skip(reason)


def pinned_versions() -> dict[str, str]:
    """Every node package package.json pins: ``{"ws": "8.23.0", "engine.io": ...}``."""
    manifest = json.loads((HERE / "package.json").read_text(encoding="utf-8"))
    return {name: str(version) for name, version in manifest["dependencies"].items()}


def pinned_ws_version() -> str:
    return pinned_versions()["ws"]


def installed_version(node_modules: Path, package: str) -> str | None:
    try:
        manifest = json.loads((node_modules / package / "package.json").read_text("utf-8"))
        return str(manifest["version"])
    except (OSError, ValueError, KeyError):
        return None


def installed_ws_version(node_modules: Path) -> str | None:
    return installed_version(node_modules, "ws")


def install_is_current(node_modules: Path) -> bool:
    """Whether ``node_modules`` holds every pinned package at its pinned version."""
    pinned = pinned_versions().items()
    return all(installed_version(node_modules, name) == version for name, version in pinned)


def cache_prefix() -> Path:
    if (ROOT / ".nox").is_dir():
        return ROOT / ".nox" / ".cache" / "interop-node"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "anywire-interop"


def npm_install() -> Path:
    """Install package.json into the cache (unless it already holds every pinned package)."""
    prefix = cache_prefix()
    node_modules = prefix / "node_modules"
    if install_is_current(node_modules):
        return node_modules
    npm = shutil.which("npm")
    if npm is None:
        unavailable("npm is not installed and ANYWIRE_NODE_MODULES is not set")
    prefix.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        if (HERE / name).is_file():
            shutil.copyfile(HERE / name, prefix / name)
    command = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix)]
    try:
        subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        output = getattr(exc, "stderr", None) or ""
        unavailable(f"{' '.join(command)} failed: {exc}\n{output[-2000:]}")
    return node_modules


def find_node_modules() -> Path:
    configured = os.environ.get("ANYWIRE_NODE_MODULES")
    if not configured:
        return npm_install()
    node_modules = Path(configured)
    version = installed_ws_version(node_modules)
    if version is None:
        unavailable(f"ANYWIRE_NODE_MODULES={configured} holds no ws package")
    if version != pinned_ws_version():
        pytest.fail(
            f"ANYWIRE_NODE_MODULES holds ws {version}, package.json pins {pinned_ws_version()}",
            pytrace=False,
        )
    return node_modules


async def stop_process(process: Process) -> None:
    """Kill ``process`` (if still running) and reap it, even when cancelled."""
    with anyio.CancelScope(shield=True):
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.aclose()


class NodeServer:
    """A running ``ws_server.js``: its port and the JSON events it prints."""

    def __init__(
        self, port: int, stdout: BufferedByteReceiveStream, *, pid: int | None = None
    ) -> None:
        self.port = port
        self.pid = pid
        self._stdout = stdout

    def url(self, path: str = "/echo") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def next_event(self) -> Event:
        with anyio.fail_after(timeout(10)):
            line = await self._stdout.receive_until(b"\n", 1 << 20)
        event: Event = json.loads(line)
        return event

    async def events_until_close(self) -> list[Event]:
        """Events up to and including the next ``close`` (one connection's end)."""
        events = [await self.next_event()]
        while events[-1]["event"] != "close":
            events.append(await self.next_event())
        return events


@dataclass(frozen=True)
class NodePeers:
    """node, the folder holding ``ws``, and the two scripts as async helpers."""

    executable: str
    node_modules: Path
    version: str
    ws_version: str

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "NODE_PATH": str(self.node_modules)}

    @asynccontextmanager
    async def server(self, *args: str, script: str = "ws_server.js") -> AsyncIterator[NodeServer]:
        """Run ``script *args`` (``ws_server.js``); yield it once it has printed its port.

        ``NodeServer.pid`` is the process id (to stop it with SIGSTOP, to kill it).
        """
        command = [self.executable, str(SCRIPTS / script), *args]
        # stdin stays an open pipe: the server exits by itself if this process dies.
        process = await anyio.open_process(command, env=self.env, stderr=None)
        try:
            assert process.stdout is not None
            stdout = BufferedByteReceiveStream(process.stdout)
            try:
                with anyio.fail_after(timeout(10)):
                    first_line = await stdout.receive_until(b"\n", 64)
            except (anyio.IncompleteRead, anyio.EndOfStream) as exc:
                message = f"{script} exited before printing its port: {command}"
                raise RuntimeError(message) from exc
            yield NodeServer(int(first_line), stdout, pid=process.pid)
        finally:
            await stop_process(process)

    async def client(self, url: str, scenario: str, *args: str) -> list[Event]:
        """Run ``ws_client.js url scenario *args`` to its end; return its events."""
        command = [self.executable, str(SCRIPTS / "ws_client.js"), url, scenario, *args]
        with anyio.fail_after(timeout(30)):
            result = await anyio.run_process(
                command, env=self.env, stdin=subprocess.DEVNULL, check=False
            )
        stdout = result.stdout.decode("utf-8", "replace")
        if result.returncode != 0:
            stderr = result.stderr.decode("utf-8", "replace")
            raise AssertionError(
                f"ws_client.js {scenario} exited {result.returncode}\n"
                f"stdout:\n{stdout}\nstderr:\n{stderr}"
            )
        return [json.loads(line) for line in stdout.splitlines()]


@pytest.fixture(scope="session")
def node() -> NodePeers:
    executable = shutil.which("node")
    if executable is None:
        unavailable("node is not installed")
    node_modules = find_node_modules()
    version = subprocess.run(
        [executable, "--version"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    ws_version = installed_ws_version(node_modules) or "?"
    return NodePeers(executable, node_modules, version, ws_version)


def pytest_report_header() -> list[str]:
    import websockets

    node = shutil.which("node")
    node_version = "missing"
    if node is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            node_version = subprocess.run(
                [node, "--version"], capture_output=True, text=True, timeout=60, check=True
            ).stdout.strip()
    pinned = ", ".join(f"{name} {version}" for name, version in pinned_versions().items())
    return [
        f"interop peers: websockets {websockets.version.version}, "
        f"node {node_version}, {pinned} (pinned)"
    ]
