"""The harness of the suites: server processes, the load generator, the scenarios, a quiet
machine, and the command line and ``main()`` that every ``*_run.py`` shares."""

from __future__ import annotations

import argparse
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
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _doc import write_section
from _node import ensure_node_packages

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


def server_cmd(row: Row, extra: Sequence[str] = ()) -> list[str]:
    """The command of ``row``'s echo server (``ws_servers.py``)."""
    cmd = [sys.executable, str(SERVERS_SCRIPT), row.impl, "--port", "0", *extra]
    if row.compression:
        cmd.append("--compression")
    return cmd


@contextlib.contextmanager
def server_process(
    row: Row, settings: Settings, extra: Sequence[str] = ()
) -> Iterator[tuple[int, int]]:
    """Start ``row``'s server; yield ``(pid, port)``; stop it on the way out."""
    with server_command(server_cmd(row, extra), settings) as (pid, port):
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
    total0, idle0 = cpu_ticks()
    time.sleep(interval)
    total1, idle1 = cpu_ticks()
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


# -- /proc -------------------------------------------------------------------------


def clk_tck() -> int:
    return os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int | str) -> float:
    """User + system CPU seconds of process ``pid`` (or ``"self"``) so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / clk_tck()


def cpu_ticks() -> tuple[int, int]:
    """The whole machine's CPU ticks so far: in all, and idle (idle + iowait)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(ticks), ticks[3] + ticks[4]


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy so far (all but idle and iowait)."""
    total, idle = cpu_ticks()
    return (total - idle) / clk_tck()


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


def window_timeout(settings: Settings) -> float:
    """How long a load generator may take: its warm-up and window, and a minute."""
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


def run_timed(m: Measurements, settings: Settings, only: Collection[str] | None = None) -> None:
    """Run the timed scenarios (all, or those in ``only``) against a fresh server."""
    scenarios = scenario_args(m.row, settings)
    timeout = window_timeout(settings)

    def measure(name: str, pid: int, port: int) -> Result:
        args = [*target_args(m.row, pid, port), *scenarios[name]]
        return run_load(name.split("-")[0], args, settings, timeout)

    names = [n for n in scenarios if only is None or n in only]
    on_fresh_server(m, server_cmd(m.row), names, settings, measure)


def on_fresh_server(
    m: Measurements,
    cmd: Sequence[str],
    names: Sequence[str],
    settings: Settings,
    measure: Callable[[str, int, int], Result],
) -> None:
    """Start the server ``cmd``; add to ``m`` each scenario of ``names``, measured by
    ``measure(name, pid, port)`` (see :func:`least_disturbed`); stop the server. A server
    that fails counts as an error of every scenario."""
    try:
        with server_command(cmd, settings) as (pid, port):
            for name in names:

                def once(name: str = name) -> Result:
                    return measure(name, pid, port)

                m.add(name, least_disturbed(once, m.row, name, settings))
    except ServerFailed as exc:
        for name in names:
            m.add(name, {"error": str(exc)})
        print(f"  {m.row.label:<28} ERROR {exc}", flush=True)


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
    return bool(
        result.get("other_cpu", 0.0) > OTHER_LIMIT or result.get("slowdown", 1.0) > SLOWDOWN_LIMIT
    )


def _disturbance(result: Result) -> float:
    other = result.get("other_cpu", 0.0) / OTHER_LIMIT
    return float(max(other, (result.get("slowdown", 1.0) - 1) / (SLOWDOWN_LIMIT - 1)))


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


def missing_modules(names: Iterable[str]) -> list[str]:
    """Those of the modules ``names`` that cannot be imported."""
    return [name for name in names if not _module_exists(name)]


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def skip_missing(
    table: Iterable[Measurements], requires: Mapping[str, Sequence[str]]
) -> list[Measurements]:
    """The rows whose modules (``requires[impl]``) are installed; the others are marked
    skipped, and said so."""
    live = []
    for m in table:
        if missing := missing_modules(requires.get(m.row.impl, [])):
            m.skipped = f"not installed: {', '.join(missing)}"
            print(f"  {m.row.label:<28} skipped ({m.skipped})", flush=True)
        else:
            live.append(m)
    return live


def run_rounds(
    live: list[Measurements],
    settings: Settings,
    run_round: Callable[[Measurements, Collection[str] | None], None],
    again: Collection[str],
    again_label: str,
) -> None:
    """Every scenario of every row (``run_round(m, None)``), then ``settings.rounds - 1``
    more rounds of the scenarios ``again``, interleaved across rows."""
    print(f"round 1 of {settings.rounds}: every scenario", flush=True)
    for m in live:
        run_round(m, None)
    for n in range(2, settings.rounds + 1):
        print(f"round {n} of {settings.rounds}: {again_label} only", flush=True)
        for m in live:
            run_round(m, again)


def run_all(rows: list[Row], settings: Settings) -> list[Measurements]:
    """All scenarios for all rows; the 100 x 10 scenario in interleaved rounds."""
    table = [Measurements(row) for row in rows]
    live = skip_missing(table, REQUIRES)

    def run_round(m: Measurements, only: Collection[str] | None) -> None:
        run_timed(m, settings, only)

    run_rounds(live, settings, run_round, {"flood"}, "100 x 10")
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


# -- the command line and main() of every suite ------------------------------------


def choose_cpus(no_pin: bool) -> tuple[int | None, int | None]:
    """Server on the last allowed CPU, load generator (and this script) on the first."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if no_pin or len(cpus) < 2:
        return None, None
    os.sched_setaffinity(0, {cpus[0]})
    return cpus[-1], cpus[0]


def add_common_args(
    parser: argparse.ArgumentParser,
    *,
    rounds: int = 3,
    rounds_help: str = "rounds",
    only_help: str | None = None,
    retries: bool = True,
    saved_runs: bool = True,
) -> None:
    """The options of every suite: the window, the rounds, ``--only`` (comma-separated;
    when ``only_help`` is given), pinning, the quiet machine, ``--retries`` (for suites
    that measure through :func:`least_disturbed`), ``--no-write``, and ``--at`` and
    ``--from-json`` (for suites that save their runs)."""
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--rounds", type=int, default=rounds, help=rounds_help)
    if only_help is not None:
        parser.add_argument("--only", help=only_help)
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="seconds to wait, before each measurement, for other programs to go idle",
    )
    parser.add_argument(
        "--quiet-cpus", type=float, default=0.15, help="what counts as idle, in CPUs busy"
    )
    if retries:
        parser.add_argument(
            "--retries",
            type=int,
            default=2,
            help="measure again, at most this often, when other programs were busy meanwhile",
        )
    parser.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    if saved_runs:
        parser.add_argument("--at", metavar="REV", help="measure anywire as committed at REV")
        parser.add_argument(
            "--from-json", metavar="PATH", help="render a saved run (bench/results/) instead"
        )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings of :func:`add_common_args`'s options (plus ``--idle-conns`` and
    ``--handshake-concurrency`` where a suite has them). Pins this process (see
    :func:`choose_cpus`) unless ``--no-pin``."""
    server_cpu, client_cpu = choose_cpus(args.no_pin)
    return Settings(
        duration=args.duration,
        warmup=args.warmup,
        rounds=args.rounds,
        idle_conns=getattr(args, "idle_conns", 0),
        handshake_concurrency=getattr(args, "handshake_concurrency", 0),
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        quiet_wait=args.quiet_wait,
        quiet_cpus=args.quiet_cpus,
        retries=getattr(args, "retries", Settings.retries),
    )


def suite_main(
    args: argparse.Namespace,
    section: str,
    script: str,
    measure: Callable[[], str | None],
    replay: Callable[[Path], str] | None = None,
    *,
    node: bool = True,
) -> int:
    """What every suite's ``main()`` does: exit on SIGTERM, ``--at``, the node packages
    (with ``node``); then ``replay(path)`` for ``--from-json path``, else ``measure()``
    (which saves its raw results): the suite's section of docs/benchmarks.md, printed
    and written unless ``--no-write`` (``None``: nothing to show, as after ``--profile``);
    every child process stopped on the way out. Returns the exit code."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if getattr(args, "at", None):
        export_revision(args.at)
    if node:
        ensure_node_packages()
    try:
        from_json = getattr(args, "from_json", None)
        generated = replay(Path(from_json)) if replay and from_json else measure()
        if generated is None:
            return 0
        print("\n" + generated)
        if not args.no_write:
            write_section(section, script, generated)
        return 0
    except KeyboardInterrupt:
        print("interrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        kill_children()


def wanted_impls(only: str | None, known: Iterable[str]) -> set[str] | None:
    """The servers named by ``--only`` (comma-separated; ``None``: all of them), each
    checked against ``known``."""
    if only is None:
        return None
    wanted = set(only.split(","))
    if unknown := wanted - set(known):
        raise SystemExit(f"unknown server(s): {', '.join(sorted(unknown))}")
    return wanted
