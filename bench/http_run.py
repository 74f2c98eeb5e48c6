"""The ASGI runner side by side with uvicorn and hypercorn: ``python bench/http_run.py``.

One raw ASGI app (``bench/http_servers.py``) runs under each server, in its own
process pinned to one core; the load runs on the other core: ``wrk`` (HTTP ``GET
/json``, 50 keep-alive connections, one thread) and node (``bench/ws_load.mjs``: 100
WebSocket connections x 10 echoes in flight). The server's CPU time comes from
``/proc``. Every measurement runs on a fresh server process, in interleaved rounds;
the tables show medians and are written to the ``http`` section of
``docs/benchmarks.md`` (``_http_report.py``). See bench/README.md.

``python bench/http_run.py --profile anywire-asyncio`` instead profiles one server
under the HTTP load (``--profile-scenario ws``: the WebSocket load) with py-spy and
cProfile, into ``bench/profiles/``.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from _harness import (
    BENCH,
    ROOT,
    Measurements,
    Result,
    Row,
    ServerFailed,
    Settings,
    children,
    clk_tck,
    export_revision,
    host_slowdown,
    kill_children,
    least_disturbed,
    pin_to,
    read_line,
    run_load,
    server_command,
)
from _http_report import environment, load_results, render, save_results
from _node import ensure_node_packages
from http_servers import REQUIRES

SERVERS_SCRIPT = BENCH / "http_servers.py"

#: The rows of each table, in order; the ``-uvloop`` rows are references.
HTTP_ROWS = [
    "anywire-asyncio",
    "anywire-trio",
    "uvicorn-h11",
    "uvicorn-httptools",
    "hypercorn-asyncio",
    "hypercorn-trio",
    "uvicorn-httptools-uvloop",
]
WS_ROWS = [
    "anywire-asyncio",
    "anywire-trio",
    "uvicorn-websockets",
    "uvicorn-wsproto",
    "hypercorn-asyncio",
    "hypercorn-trio",
    "uvicorn-websockets-uvloop",
]
SUITES = {"http": HTTP_ROWS, "ws": WS_ROWS}
CONNECTIONS = 50  # wrk's keep-alive connections

# -- wrk ---------------------------------------------------------------------------------

#: wrk's ``done`` hook: one JSON line with the counts, after wrk's own report.
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""
WRK_ERRORS = ("connect", "read", "write", "status", "timeout")


def wrk_binary() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is needed for the HTTP benchmark: apt install wrk")
    return wrk


def wrk_script() -> str:
    """The ``done`` hook, written once to a temporary file."""
    fd, path = tempfile.mkstemp(prefix="anywire-wrk-", suffix=".lua")
    with os.fdopen(fd, "w") as file:
        file.write(WRK_SCRIPT)
    atexit.register(os.unlink, path)
    return path


def run_wrk(url: str, seconds: int, settings: Settings, lua: str) -> tuple[Result, float]:
    """One wrk run on the load generator's CPU: its counts, and its CPU seconds."""
    cmd = [wrk_binary(), "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s"]
    before = _children_cpu()
    try:
        done = subprocess.run(
            [*cmd, "-s", lua, url],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            preexec_fn=pin_to(settings.client_cpu),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"wrk: no answer within {seconds + 30} s"}, 0.0
    cpu = _children_cpu() - before
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": f"wrk: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"}, cpu
    result: Result = json.loads(lines[-1])
    return result, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _whole_seconds(value: float) -> int:
    return max(1, math.ceil(value))  # wrk takes whole seconds


# -- /proc ------------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / clk_tck()


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy so far (all but idle and iowait)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / clk_tck()


# -- the measurements ----------------------------------------------------------------


def measure_http(pid: int, port: int, settings: Settings, lua: str) -> Result:
    """wrk's warm-up run, then its measured run with the server's CPU around it."""
    url = f"http://127.0.0.1:{port}/json"
    warm, _ = run_wrk(url, _whole_seconds(settings.warmup), settings, lua)
    if "error" in warm:
        return warm
    cpu0, busy0, t0 = process_cpu(pid), machine_busy(), time.perf_counter()
    counts, client = run_wrk(url, _whole_seconds(settings.duration), settings, lua)
    seconds = time.perf_counter() - t0
    server, machine = process_cpu(pid) - cpu0, machine_busy() - busy0
    if "error" in counts:
        return counts
    requests = counts["requests"]
    failures = {k: counts[k] for k in WRK_ERRORS if counts[k]}
    return {
        **counts,
        "ops": requests,
        "seconds": seconds,
        "rate": requests / (counts["duration_us"] / 1e6),
        "server_cpu_s": server,
        "server_cpu_util": server / seconds,
        "client_cpu_util": client / seconds,
        "other_cpu": (machine - server - client) / seconds,
        "cpu_us_per_op": server * 1e6 / requests if requests else None,
        "failures": sum(failures.values()),
        "first_failure": ", ".join(f"{v} {k} errors" for k, v in failures.items()) or None,
    }


def ws_args(pid: int, port: int, settings: Settings) -> list[str]:
    """ws_load.mjs's 100 x 10 scenario (32-byte text messages) against ``/ws``."""
    return [
        *["--url", f"ws://127.0.0.1:{port}/ws", "--pid", str(pid), "--text", "--size", "32"],
        *["--conns", "100", "--inflight", "10"],
        *["--warmup", str(settings.warmup), "--duration", str(settings.duration)],
    ]


def measure_ws(pid: int, port: int, settings: Settings) -> Result:
    timeout = settings.warmup + settings.duration + 60
    return run_load("flood", ws_args(pid, port, settings), settings, timeout)


def server_cmd(impl: str, extra: Sequence[str] = ()) -> list[str]:
    return [sys.executable, str(SERVERS_SCRIPT), impl, *extra]


def run_one(m: Measurements, suite: str, settings: Settings, lua: str) -> None:
    """One measurement of ``suite`` on a fresh server process."""

    def measure(pid: int, port: int) -> Result:
        if suite == "http":
            return measure_http(pid, port, settings, lua)
        return measure_ws(pid, port, settings)

    try:
        with server_command(server_cmd(m.row.impl), settings) as (pid, port):
            result = least_disturbed(lambda: measure(pid, port), m.row, suite, settings)
    except ServerFailed as exc:
        result = {"error": str(exc)}
        print(f"  {m.row.label:<28} {suite:<12} ERROR {exc}", flush=True)
    m.add(suite, result)


def missing_modules(impl: str) -> list[str]:
    import importlib.util

    def exists(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            return False

    return [name for name in REQUIRES[impl] if not exists(name)]


def run_all(plan: dict[str, list[str]], settings: Settings, lua: str) -> dict[str, Measurements]:
    """Every suite's rows, in ``settings.rounds`` interleaved rounds."""
    table: dict[str, Measurements] = {}
    for impl in dict.fromkeys(i for rows in plan.values() for i in rows):
        table[impl] = Measurements(Row(impl))
        if missing := missing_modules(impl):
            table[impl].skipped = f"not installed: {', '.join(missing)}"
            print(f"  {impl:<28} skipped ({table[impl].skipped})", flush=True)
    for n in range(1, settings.rounds + 1):
        print(f"round {n} of {settings.rounds}", flush=True)
        for suite, rows in plan.items():
            for impl in rows:
                if not table[impl].skipped:
                    run_one(table[impl], suite, settings, lua)
    return table


# -- profiling ---------------------------------------------------------------------------


def profile(impl: str, suite: str, settings: Settings, rate: int, top: int) -> None:
    """py-spy (from outside), then cProfile (inside a second server) under ``suite``'s load."""
    from _profiling import PROFILES

    PROFILES.mkdir(exist_ok=True)
    seconds = _whole_seconds(settings.duration)
    stem = f"{impl}-{suite}"
    parts = [
        _py_spy_part(impl, suite, settings, seconds, rate, top, stem),
        _cprofile_part(impl, suite, settings, seconds, top, stem),
    ]
    summary = PROFILES / f"{stem}-top.txt"
    summary.write_text("\n".join(parts))
    print("\n".join(parts))
    print(f"wrote {summary.relative_to(ROOT)} and the profiles beside it")


SCENARIO_TEXT = {
    "http": f"wrk, {CONNECTIONS} keep-alive connections, GET /json",
    "ws": "100 WebSocket connections x 10 echoes in flight",
}


def _background_load(
    suite: str, pid: int, port: int, seconds: int, settings: Settings, lua: str
) -> subprocess.Popen[str]:
    from _profiling import _start_load

    if suite == "ws":
        timed = dataclasses.replace(settings, warmup=1.0, duration=float(seconds))
        return _start_load("flood", ws_args(pid, port, timed), settings)
    cmd = [wrk_binary(), "-t1", f"-c{CONNECTIONS}", f"-d{seconds + 1}s", "-s", lua]
    url = f"http://127.0.0.1:{port}/json"
    pin = pin_to(settings.client_cpu)
    proc = subprocess.Popen([*cmd, url], stdout=subprocess.PIPE, text=True, preexec_fn=pin)
    children.add(proc)
    return proc


def _py_spy_part(
    impl: str, suite: str, settings: Settings, seconds: int, rate: int, top: int, stem: str
) -> str:
    from _profiling import PROFILES, _py_spy, summarize_profile

    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    raw, svg = PROFILES / f"{stem}.txt", PROFILES / f"{stem}.svg"
    with server_command(server_cmd(impl), settings) as (pid, port):
        load = _background_load(suite, pid, port, 2 * (seconds + 2) + 1, settings, wrk_script())
        time.sleep(1.5)
        _py_spy(py_spy, pid, seconds, rate, "raw", raw, settings)
        _py_spy(py_spy, pid, seconds, rate, "flamegraph", svg, settings)
        load.wait(timeout=120)
        children.discard(load)
    text = summarize_profile(raw, impl, top)
    return text.replace("100 connections x 10 messages in flight", SCENARIO_TEXT[suite], 1)


def _cprofile_part(
    impl: str, suite: str, settings: Settings, seconds: int, top: int, stem: str
) -> str:
    from _profiling import PROFILES, summarize_cprofile

    path = PROFILES / f"{stem}.pstats"
    path.unlink(missing_ok=True)
    lua = wrk_script()
    with server_command(server_cmd(impl, ["--cprofile", str(path)]), settings) as (pid, port):
        proc = _server_proc(pid)
        if suite == "http":
            run_wrk(f"http://127.0.0.1:{port}/json", 1, settings, lua)  # warm-up
            counted = _profiled(proc, lambda: _wrk_requests(port, seconds, settings, lua))
        else:
            load = _background_load(suite, pid, port, seconds + 3, settings, lua)
            time.sleep(1.5)
            profiled = _profiled(proc, lambda: _sleep(seconds))
            load.wait(timeout=120)
            children.discard(load)
            assert load.stdout is not None
            counted = json.loads(load.stdout.read().strip().splitlines()[-1])["rate"] * profiled
    text = summarize_cprofile(path, impl, top, estimate=counted)
    if suite == "http":  # a "message" is a request, counted by wrk
        text = text.replace("messages echoed", "requests answered", 1)
        text = text.replace("estimated from the load generator's rate", "wrk's count", 1)
    return text


def _server_proc(pid: int) -> subprocess.Popen[str]:
    return next(p for p in children if p.pid == pid)


def _profiled(proc: subprocess.Popen[str], work: Callable[[], float]) -> float:
    """``work()`` with cProfile on in the server; its result."""
    proc.send_signal(signal.SIGUSR1)
    value = work()
    proc.send_signal(signal.SIGUSR2)
    read_line(proc, "PROFILE WRITTEN")
    return value


def _wrk_requests(port: int, seconds: int, settings: Settings, lua: str) -> float:
    counts, _ = run_wrk(f"http://127.0.0.1:{port}/json", seconds, settings, lua)
    return float(counts.get("requests", 0))


def _sleep(seconds: float) -> float:
    start = time.perf_counter()
    time.sleep(seconds)
    return time.perf_counter() - start


# -- main --------------------------------------------------------------------------------


def choose_cpus(no_pin: bool) -> tuple[int | None, int | None]:
    """Server on the last allowed CPU, load generator (and this script) on the first."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if no_pin or len(cpus) < 2:
        return None, None
    os.sched_setaffinity(0, {cpus[0]})
    return cpus[-1], cpus[0]


def select_plan(only: str | None, suites: str) -> dict[str, list[str]]:
    wanted_suites = suites.split(",")
    if unknown := set(wanted_suites) - set(SUITES):
        raise SystemExit(f"unknown suite(s): {', '.join(sorted(unknown))} (http, ws)")
    plan = {s: list(SUITES[s]) for s in wanted_suites}
    if only is not None:
        wanted = set(only.split(","))
        if unknown := wanted - set(HTTP_ROWS) - set(WS_ROWS):
            raise SystemExit(f"unknown server(s): {', '.join(sorted(unknown))}")
        plan = {s: [i for i in rows if i in wanted] for s, rows in plan.items()}
    return {s: rows for s, rows in plan.items() if rows}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each on fresh servers")
    parser.add_argument("--only", help="comma-separated servers, e.g. anywire-trio,hypercorn-trio")
    parser.add_argument("--suites", default="http,ws", help="http, ws or both (the default)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--quiet-wait", type=float, default=10.0, help="see bench/run.py")
    parser.add_argument("--quiet-cpus", type=float, default=0.15, help="see bench/run.py")
    parser.add_argument("--retries", type=int, default=2, help="see bench/run.py")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--at", metavar="REV", help="measure anywire as committed at REV")
    parser.add_argument("--from-json", metavar="PATH", help="render a saved run instead")
    parser.add_argument("--profile", action="append", metavar="SERVER", help="profile SERVER")
    parser.add_argument("--profile-scenario", choices=["http", "ws"], default="http")
    parser.add_argument("--profile-rate", type=int, default=250, help="py-spy samples/s")
    parser.add_argument("--top", type=int, default=15, help="functions in the profile summary")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    server_cpu, client_cpu = choose_cpus(args.no_pin)
    settings = Settings(
        duration=args.duration,
        warmup=args.warmup,
        rounds=args.rounds,
        idle_conns=0,
        handshake_concurrency=0,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        quiet_wait=args.quiet_wait,
        quiet_cpus=args.quiet_cpus,
        retries=args.retries,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.at:
        export_revision(args.at)
    try:
        if args.profile:
            ensure_node_packages()
            for impl in args.profile:
                profile(impl, args.profile_scenario, settings, args.profile_rate, args.top)
            return 0
        if args.from_json:
            plan, table, settings, env = load_results(Path(args.from_json))
        else:
            plan = select_plan(args.only, args.suites)
            wrk_binary()
            if "ws" in plan:
                ensure_node_packages()
            host_slowdown(settings)  # the probe's first best time
            table = run_all(plan, settings, wrk_script())
            env = environment(settings, sys.argv[1:] if argv is None else list(argv))
            print(f"raw results: {save_results(plan, table, settings, env).relative_to(ROOT)}")
        generated = render(plan, table, settings, env)
        print("\n" + generated)
        if not args.no_write:
            from _doc import write_section

            write_section("http", "bench/http_run.py", generated)
        return 0
    except KeyboardInterrupt:
        print("interrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        kill_children()


if __name__ == "__main__":
    sys.exit(main())
