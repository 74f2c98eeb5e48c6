"""``python -m anywire demo``: the page, the cached client build, the chat, the command line.

A fake cache folder holds a dummy ``engine.io.min.js`` and a fake ``npm`` stands in for
the real one, so nothing here needs node. The real browser build in a real browser is
tested in ``tests/interop/test_demo_browser.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.streams.text import TextReceiveStream

import anywire.engineio as engineio
from anywire._demo import (
    CACHE_ENV,
    ENGINEIO_CLIENT_VERSION,
    ClientBuildUnavailable,
    cache_dir,
    client_path,
    create_app,
    ensure_client,
)
from anywire.server._cli import build_parser, main
from tests.conftest import timeout
from tests.server_helpers import running

ROOT = Path(__file__).parent.parent
DUMMY_JS = b"/* a dummy engine.io-client build */ var eio = function () {};\n"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """A cache folder with a dummy browser build in it."""
    folder = tmp_path / "cache"
    path = client_path(folder)
    path.parent.mkdir(parents=True)
    path.write_bytes(DUMMY_JS)
    return folder


def message(**fields: Any) -> str:
    return json.dumps(fields)


async def receive(client: engineio.AsyncClient) -> dict[str, Any]:
    with anyio.fail_after(timeout(5)):
        data = await client.receive()
    assert isinstance(data, str)
    event: dict[str, Any] = json.loads(data)
    return event


# -- the app: page, client build, chat ------------------------------------------------------


@pytest.mark.anyio
async def test_serves_the_page_and_the_cached_client(cache: Path) -> None:
    async with running(create_app(client_path(cache)), lifespan="on") as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            page = await http.get("/")
            script = await http.get("/engine.io.min.js")
            missing = await http.get("/nothing-here")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script src="/engine.io.min.js"></script>' in page.text
    assert "eio(location.origin)" in page.text
    for element in ("name", "text", "log", "transport", "rtt"):
        assert f'id="{element}"' in page.text
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript"
    assert script.content == DUMMY_JS
    assert missing.status_code == 404


@pytest.mark.anyio
async def test_chat_reaches_everyone_and_pong_only_the_sender(cache: Path) -> None:
    async with running(create_app(client_path(cache)), lifespan="on") as server:
        async with engineio.connect(server.url) as ann:
            async with engineio.connect(server.url) as bob:
                await ann.send(message(type="join", name="Ann"))
                assert await receive(ann) == {"type": "welcome", "name": "Ann", "online": 2}
                assert await receive(bob) == {"type": "joined", "name": "Ann", "online": 2}
                await bob.send(message(type="join", name="Bob"))
                assert await receive(bob) == {"type": "welcome", "name": "Bob", "online": 2}
                assert await receive(ann) == {"type": "joined", "name": "Bob", "online": 2}

                await ann.send(message(type="ping", t=1234.5))
                await ann.send(message(type="say", text="hello Bob"))
                said = {"type": "said", "name": "Ann", "text": "hello Bob"}
                assert await receive(ann) == {"type": "pong", "t": 1234.5}
                assert await receive(ann) == said
                assert await receive(bob) == said  # the pong went to Ann only

                await bob.send(message(type="say", text="hi Ann"))
                said = {"type": "said", "name": "Bob", "text": "hi Ann"}
                assert await receive(bob) == said
                assert await receive(ann) == said
            assert await receive(ann) == {"type": "left", "name": "Bob", "online": 1}


@pytest.mark.anyio
async def test_chat_ignores_junk_and_bounds_what_it_keeps(cache: Path) -> None:
    async with running(create_app(client_path(cache)), lifespan="on") as server:
        async with engineio.connect(server.url) as client:
            for junk in ("not json", "[1, 2]", message(type="nope"), message(type="say", text="x")):
                await client.send(junk)  # saying before joining is ignored too
            await client.send(message(type="join", name="  A\n very " + "long" * 20))
            welcome = await receive(client)
            assert welcome["name"] == ("A very " + "long" * 20)[:32]
            await client.send(message(type="say", text="   "))
            await client.send(message(type="say", text=7))
            await client.send(message(type="say", text="y" * 600))
            said = await receive(client)  # nothing came of the empty and non-text lines
            assert said == {"type": "said", "name": welcome["name"], "text": "y" * 500}
            await client.send(message(type="join"))
            assert (await receive(client))["name"] == "guest"


# -- the client build: cache, npm --------------------------------------------------------------


def test_cache_folder_default_and_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "anywire" / "demo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "anywire" / "demo"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    assert client_path() == (
        tmp_path / "mine" / f"engine.io-client-{ENGINEIO_CLIENT_VERSION}" / "engine.io.min.js"
    )


def test_a_cached_build_needs_no_npm(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert ensure_client(cache).read_bytes() == DUMMY_JS


def test_without_npm_it_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "empty"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with pytest.raises(ClientBuildUnavailable, match="apt install npm"):
        ensure_client()
    assert main(["demo", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("anywire demo: error: ")
    assert f"engine.io-client {ENGINEIO_CLIENT_VERSION}" in err
    assert "sudo apt install npm" in err
    assert not client_path().exists()


def fake_npm(bin_dir: Path, *, version: str = ENGINEIO_CLIENT_VERSION, fail: bool = False) -> Path:
    """An ``npm`` whose ``pack`` writes a tarball like the registry's; it logs its argv."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "npm"
    script.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""
            import io, sys, tarfile
            from pathlib import Path
            Path(sys.argv[0] + ".log").write_text(" ".join(sys.argv[1:]))
            if {fail!r}:
                sys.exit("npm error 404 Not Found")
            destination = Path(sys.argv[sys.argv.index("--pack-destination") + 1])
            body = b"/*!\\n * Engine.IO v{version}\\n */\\nvar eio;"
            with tarfile.open(destination / "engine.io-client-{version}.tgz", "w:gz") as tar:
                info = tarfile.TarInfo("package/dist/engine.io.min.js")
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
            """
        )
    )
    script.chmod(0o755)
    return script


def test_first_run_takes_the_build_from_npm_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    npm = fake_npm(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(npm.parent))
    path = ensure_client(tmp_path / "cache")
    assert path == client_path(tmp_path / "cache")
    assert f"Engine.IO v{ENGINEIO_CLIENT_VERSION}".encode() in path.read_bytes()
    argv = Path(f"{npm}.log").read_text()
    assert argv.startswith(f"pack engine.io-client@{ENGINEIO_CLIENT_VERSION} --pack-destination ")
    assert sorted(os.listdir(path.parent)) == ["engine.io.min.js"]  # no tarball left behind
    npm.unlink()
    assert ensure_client(tmp_path / "cache") == path  # cached: npm is not needed again


@pytest.mark.parametrize(
    ("options", "error"),
    [({"fail": True}, "npm error 404"), ({"version": "1.0.0"}, "is not Engine.IO v")],
)
def test_a_failed_fetch_says_why_and_caches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], error: str
) -> None:
    monkeypatch.setenv("PATH", str(fake_npm(tmp_path / "bin", **options).parent))
    with pytest.raises(ClientBuildUnavailable, match=error):
        ensure_client(tmp_path / "cache")
    assert not client_path(tmp_path / "cache").exists()


# -- the command line -------------------------------------------------------------------------


def test_demo_arguments() -> None:
    args = build_parser().parse_args(["demo"])
    assert (args.command, args.backend, args.host, args.port) == (
        "demo",
        "asyncio",
        "127.0.0.1",
        8000,
    )
    args = build_parser().parse_args(["demo", "--backend", "trio", "--port", "0", "--host", "::1"])
    assert (args.backend, args.host, args.port) == ("trio", "::1", 0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--backend", "twisted"])


def test_demo_help_reads_well() -> None:
    def run(*args: str) -> str:
        command = [sys.executable, "-m", "anywire", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout(30))
        return result.stdout

    out = run("demo", "--help")
    assert out.startswith("usage: python -m anywire demo")
    for text in ("--backend {asyncio,trio}", "--port", "--host", "npm", CACHE_ENV, "Ctrl+C"):
        assert text in out
    assert re.search(r"^\s+demo\s+a chat page", run("--help"), re.M)


OPEN = re.compile(r"anywire demo: open (http://127\.0\.0\.1:\d+)/ in two browser tabs")


@asynccontextmanager
async def demo_process(cache: Path, backend: str) -> AsyncIterator[tuple[anyio.abc.Process, str]]:
    """``python -m anywire demo --port 0`` and the URL it told us to open."""
    command = [sys.executable, "-m", "anywire", "demo", "--port", "0", "--backend", backend]
    env = {**os.environ, CACHE_ENV: str(cache)}
    async with await anyio.open_process(command, env=env, cwd=ROOT) as process:
        try:
            assert process.stdout is not None
            seen = ""
            with anyio.fail_after(timeout(20)):
                async for text in TextReceiveStream(process.stdout):
                    seen += text
                    if match := OPEN.search(seen):
                        break
                else:
                    raise AssertionError(f"no URL printed: {seen!r}")
            assert f"({backend} backend; Ctrl+C stops)" in seen
            yield process, match[1]
        finally:
            if process.returncode is None:
                process.kill()


@pytest.mark.anyio
async def test_demo_command_serves_and_ctrl_c_stops_it(
    cache: Path, anyio_backend_name: str
) -> None:
    async with demo_process(cache, anyio_backend_name) as (process, url):
        async with httpx.AsyncClient() as http:
            assert "anywire demo" in (await http.get(url)).text
        async with engineio.connect(url, transports=["websocket"]) as client:
            await client.send(message(type="join", name="Ann"))
            assert (await receive(client))["type"] == "welcome"
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(timeout(10)):
                await client.wait()  # the server closed the session on its way out
                assert await process.wait() == 0


def test_readme_starts_with_the_demo() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert first is not None
    assert first[1].strip().endswith("-m anywire demo")
    assert "pip install -q ." in first[1]
