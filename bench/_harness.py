"""The harness of bench/run.py: server processes, the load generator, the scenarios."""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import importlib.util
import io
import json
import math
import os
import select
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LOAD_SCRIPT = BENCH / "ws_load.mjs"
SERVERS_SCRIPT = BENCH / "ws_servers.py"
MIB = 1024 * 1024

Result = dict[str, Any]


@dataclass(frozen=True)
class Row:
    """One server configuration: a row of the table."""

    impl: str
    compression: bool = False

    @property
    def label(self) -> str:
        return f"{self.impl} +deflate" if self.compression else self.impl

    @property
    def tcp(self) -> bool:
        return self.impl.startswith("anyio-tcp-echo")


MAIN_ROWS = [
    Row("anywire-asyncio"),
    Row("anywire-trio"),
    Row("websockets-asyncio"),
    Row("websockets-trio"),
    Row("trio-websocket"),
    Row("anyio-tcp-echo-asyncio"),
    Row("anyio-tcp-echo-trio"),
]
DEFLATE_ROWS = [
    Row("anywire-asyncio", compression=True),
    Row("websockets-asyncio", compression=True),
]

#: The modules each implementation imports: a row is skipped when one is missing.
REQUIRES = {
    "anywire-trio": ["trio"],
    "websockets-asyncio": ["websockets.asyncio.server"],
    "websockets-trio": ["trio", "websockets.trio.server"],
    "trio-websocket": ["trio_websocket"],
    "anyio-tcp-echo-trio": ["trio"],
}


@dataclass(frozen=True)
class Settings:
    duration: float
    warmup: float
    rounds: int
    idle_conns: int
    handshake_concurrency: int
    server_cpu: int | None
    client_cpu: int | None
    quiet_wait: float = 10.0
    quiet_cpus: float = 0.15
    retries: int = 2


# -- processes ---------------------------------------------------------------------

children: set[subprocess.Popen[Any]] = set()


def pin_to(cpu: int | None) -> Callable[[], None] | None:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def kill_children() -> None:
    for proc in list(children):
        _stop(proc)


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    children.discard(proc)


@contextlib.contextmanager
def server_process(
    row: Row, settings: Settings, extra: Sequence[str] = ()
) -> Iterator[tuple[int, int]]:
    """Start ``row``'s server; yield ``(pid, port)``; stop it on the way out."""
    cmd = [sys.executable, str(SERVERS_SCRIPT), row.impl, "--port", "0", *extra]
    if row.compression:
        cmd.append("--compression")
    with server_command(cmd, settings) as (pid, port):
        yield pid, port


@contextlib.contextmanager
def server_command(cmd: Sequence[str], settings: Settings) -> Iterator[tuple[int, int]]:
    """Run ``cmd`` on the server's CPU until it prints ``PORT n``; yield ``(pid, n)``;
    stop it on the way out."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=pin_to(settings.server_cpu),
        start_new_session=True,  # Ctrl+C reaches us only; we stop the servers
    )
    children.add(proc)
    try:
        yield proc.pid, _read_port(proc)
    finally:
        _stop(proc)


class ServerFailed(RuntimeError):
    """A server under test did not start or did not answer."""


def _read_port(proc: subprocess.Popen[str]) -> int:
    return int(read_line(proc, "PORT ").split()[1])


def read_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 30.0) -> str:
    """The server's next line on stdout, which must start with ``prefix``."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith(prefix):
        raise ServerFailed(f"server said {line!r}, not {prefix!r} (exit code {proc.poll()})")
    return line


def run_load(
    scenario: str,
    args: Sequence[str],
    settings: Settings,
    timeout: float,
    script: Path = LOAD_SCRIPT,
) -> Result:
    """Run one scenario of the node load generator ``script``; return its JSON result
    (or ``{"error": ...}``)."""
    cmd = ["node", str(script), scenario, *args, "--clk-tck", str(clk_tck())]
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=pin_to(settings.client_cpu),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"{scenario}: no answer within {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": f"{scenario}: {done.stderr.strip().splitlines()[-1:]}"}
    result: Result = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- a quiet machine ---------------------------------------------------------------

#: Other load (in CPUs) above which a measurement is marked in the tables.
OTHER_LIMIT = 0.25
#: How much slower than its best the probe loop may run before the host counts as busy.
SLOWDOWN_LIMIT = 1.15
_probe_best: list[float] = []  # the fastest probe of this run, in seconds


def probe_seconds(cpu: int | None) -> float:
    """Time a fixed pure-Python loop on ``cpu`` (the server's): best of 5.

    The machine is a VM, and its host's other guests slow it down invisibly (no steal
    time, no busy CPU in /proc/stat); a loop that suddenly runs slower shows it.
    """
    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        best = math.inf
        for _ in range(5):
            start = time.perf_counter()
            total = 0
            for i in range(100_000):
                total += i
            best = min(best, time.perf_counter() - start)
    finally:
        os.sched_setaffinity(0, before)
    return best


def host_slowdown(settings: Settings) -> float:
    """The probe's time relative to its best in this run (1.0: as fast as ever)."""
    seconds = probe_seconds(settings.server_cpu)
    _probe_best[:] = [min([seconds, *_probe_best])]
    return seconds / _probe_best[0]


def machine_busy_cpus(interval: float = 0.5) -> float:
    """How many CPUs the whole machine kept busy over ``interval`` seconds."""

    def sample() -> tuple[int, int]:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(interval)
    total1, idle1 = sample()
    elapsed = (total1 - total0) or 1
    return (elapsed - (idle1 - idle0)) / elapsed * (os.cpu_count() or 1)


def wait_for_quiet(settings: Settings) -> float:
    """Wait (up to ``settings.quiet_wait`` s) until other programs leave the CPUs alone
    and the probe loop runs at its usual speed; return the probe's last slowdown.

    A shared machine (tests, builds) skews every number; a measurement that could not
    wait is marked in the tables through the ``other_cpu`` its load generator reports
    and the slowdown of the probe.
    """
    deadline = time.monotonic() + settings.quiet_wait
    said = False
    while True:
        busy, slowdown = machine_busy_cpus(), host_slowdown(settings)
        calm = busy <= settings.quiet_cpus and slowdown <= SLOWDOWN_LIMIT
        if calm or time.monotonic() >= deadline:
            return slowdown
        if not said:
            print(
                f"    waiting for a quiet machine: other programs keep {busy:.1f} CPUs busy, "
                f"a probe loop runs {slowdown:.2f}x its best time",
                flush=True,
            )
            said = True
        time.sleep(1.0)


def clk_tck() -> int:
    return os.sysconf("SC_CLK_TCK")


# -- scenarios ---------------------------------------------------------------------

SMALL = 32


@dataclass
class Measurements:
    """Every result of one row: scenario name -> results (several rounds for ``flood``)."""

    row: Row
    results: dict[str, list[Result]] = field(default_factory=dict)
    skipped: str | None = None

    def add(self, scenario: str, result: Result) -> None:
        self.results.setdefault(scenario, []).append(result)


def target_args(row: Row, pid: int, port: int) -> list[str]:
    if row.tcp:
        return ["--url", f"tcp://127.0.0.1:{port}", "--tcp", "--pid", str(pid)]
    extra = ["--deflate"] if row.compression else []
    return ["--url", f"ws://127.0.0.1:{port}/", "--pid", str(pid), *extra]


def _timed(settings: Settings) -> list[str]:
    return ["--warmup", str(settings.warmup), "--duration", str(settings.duration)]


def _window_timeout(settings: Settings) -> float:
    return settings.warmup + settings.duration + 60


def scenario_args(row: Row, settings: Settings) -> dict[str, list[str]]:
    """The node arguments of every timed scenario that applies to ``row``."""
    small = ["--size", str(SMALL), *([] if row.tcp else ["--text"])]
    flood = ["--conns", "100", "--inflight", "10"]
    scenarios = {
        "rtt": [*small, *_timed(settings)],
        "flood": [*small, *flood, *_timed(settings)],
        "big": ["--size", str(MIB), *_timed(settings)],
    }
    if row.tcp:
        # One message in flight per connection: nothing for the kernel to coalesce, so
        # every message costs the server a receive() and a send().
        one = ["--conns", "100", "--inflight", "1"]
        scenarios["flood-100x1"] = [*small, *one, *_timed(settings)]
    else:
        scenarios["handshake-1"] = ["--concurrency", "1", *_timed(settings)]
        conc = str(settings.handshake_concurrency)
        scenarios["handshake-n"] = ["--concurrency", conc, *_timed(settings)]
    return scenarios


def run_timed(m: Measurements, settings: Settings, only: set[str] | None = None) -> None:
    """Run the timed scenarios (all, or those in ``only``) against a fresh server."""
    names = [n for n in scenario_args(m.row, settings) if only is None or n in only]
    try:
        _run_timed(m, settings, names)
    except ServerFailed as exc:
        for name in names:
            m.add(name, {"error": str(exc)})
        print(f"  {m.row.label:<28} ERROR {exc}", flush=True)


def _run_timed(m: Measurements, settings: Settings, names: list[str]) -> None:
    with server_process(m.row, settings) as (pid, port):
        for name, scenario_argv in scenario_args(m.row, settings).items():
            if name not in names:
                continue
            args = [*target_args(m.row, pid, port), *scenario_argv]
            m.add(name, _measure(m.row, name, args, settings))


def _measure(row: Row, name: str, args: list[str], settings: Settings) -> Result:
    scenario = name.split("-")[0]
    timeout = _window_timeout(settings)
    return least_disturbed(lambda: run_load(scenario, args, settings, timeout), row, name, settings)


def least_disturbed(
    measure: Callable[[], Result], row: Row, name: str, settings: Settings
) -> Result:
    """One timed measurement, ``measure()`` after a wait for a quiet machine; measured
    again (``settings.retries`` times at most) while other programs were busy during it.
    Keeps the one with the least other load. ``measure`` reports ``other_cpu``."""
    tries: list[Result] = []
    for _ in range(settings.retries + 1):
        before = wait_for_quiet(settings)
        result = measure()
        if "error" not in result:
            result["slowdown"] = max(before, host_slowdown(settings))
        _progress(row, name, result)
        tries.append(result)
        if not disturbed(result):
            break
    return min(tries, key=_disturbance)


def disturbed(result: Result) -> bool:
    """Whether other programs or the host disturbed a measurement."""
    return (
        result.get("other_cpu", 0.0) > OTHER_LIMIT or result.get("slowdown", 1.0) > SLOWDOWN_LIMIT
    )


def _disturbance(result: Result) -> float:
    other = result.get("other_cpu", 0.0) / OTHER_LIMIT
    return max(other, (result.get("slowdown", 1.0) - 1) / (SLOWDOWN_LIMIT - 1))


def run_idle(m: Measurements, settings: Settings) -> None:
    """Idle memory per connection, on a fresh server (nothing else ran in it)."""
    try:
        with server_process(m.row, settings) as (pid, port):
            args = [*target_args(m.row, pid, port), "--conns", str(settings.idle_conns)]
            wait_for_quiet(settings)
            result = run_load("idle", args, settings, timeout=120)
    except ServerFailed as exc:
        result = {"error": str(exc)}
    m.add("idle", result)
    _progress(m.row, "idle", result)


def _progress(row: Row, name: str, result: Result) -> None:
    if "error" in result:
        summary = f"ERROR {result['error']}"
    elif name == "idle":
        summary = f"{result['kib_per_conn']:.1f} KiB/conn"
    else:
        cpu = result["cpu_us_per_op"]
        summary = f"{result['rate']:,.0f}/s, server {cpu:.1f} µs/op"
        summary += f", server CPU {result['server_cpu_util']:.0%}"
        summary += f", client CPU {result['client_cpu_util']:.0%}"
        summary += f", other {result['other_cpu']:.2f} CPUs"
        summary += f", probe {result.get('slowdown', 1.0):.2f}x"
    if result.get("failures"):
        summary += f"; {result['failures']} failed, first: {result['first_failure']}"
    print(f"  {row.label:<28} {name:<12} {summary}", flush=True)


def missing_modules(row: Row) -> list[str]:
    return [m for m in REQUIRES.get(row.impl, []) if not _module_exists(m)]


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def run_all(rows: list[Row], settings: Settings) -> list[Measurements]:
    """All scenarios for all rows; the 100 x 10 scenario in interleaved rounds."""
    table = [Measurements(row) for row in rows]
    live = []
    for m in table:
        if missing := missing_modules(m.row):
            m.skipped = f"not installed: {', '.join(missing)}"
            print(f"  {m.row.label:<28} skipped ({m.skipped})", flush=True)
        else:
            live.append(m)
    print(f"round 1 of {settings.rounds}: every scenario", flush=True)
    for m in live:
        run_timed(m, settings)
    for n in range(2, settings.rounds + 1):
        print(f"round {n} of {settings.rounds}: 100 x 10 only", flush=True)
        for m in live:
            run_timed(m, settings, only={"flood"})
    print("idle memory (fresh servers)", flush=True)
    for m in live:
        run_idle(m, settings)
    return table


# -- what is measured ----------------------------------------------------------------


def git(*args: str) -> str:
    with contextlib.suppress(OSError):
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return done.stdout.strip()
    return ""


exported: list[str] = []  # the revision given to --at, once exported


def export_revision(rev: str) -> None:
    """Make the servers import anywire as committed at ``rev``, not the working tree.

    ``git archive`` writes ``src/anywire`` at ``rev`` to a temporary folder that goes
    first on ``PYTHONPATH`` (read-only for the repository: no worktree, no checkout).
    """
    short = git("rev-parse", "--short", rev)
    if not short:
        raise SystemExit(f"--at {rev}: not a git revision of {ROOT}")
    folder = Path(tempfile.mkdtemp(prefix=f"anywire-{short}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", short, "src/anywire"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    src = str(folder / "src")
    os.environ["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
    sys.path.insert(0, src)
    exported.append(short)
