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
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from _harness import (
    BENCH,
    Measurements,
    Result,
    Row,
    Settings,
    add_common_args,
    children,
    host_slowdown,
    machine_busy,
    on_fresh_server,
    pin_to,
    process_cpu,
    run_load,
    server_command,
    settings_from_args,
    skip_missing,
    suite_main,
    wanted_impls,
)
from _http_report import environment, render, replay, save_results
from _node import ensure_node_packages
from _profiling import (
    PROFILES,
    add_profile_args,
    finish_load,
    load_rate,
    profiled,
    py_spy_binary,
    record_py_spy,
    server_proc,
    start_load,
    summarize_cprofile,
    summarize_profile,
    timed_sleep,
    write_summary,
)
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

    def measure(name: str, pid: int, port: int) -> Result:
        if name == "http":
            return measure_http(pid, port, settings, lua)
        return measure_ws(pid, port, settings)

    on_fresh_server(m, server_cmd(m.row.impl), [suite], settings, measure)


def run_all(plan: dict[str, list[str]], settings: Settings, lua: str) -> dict[str, Measurements]:
    """Every suite's rows, in ``settings.rounds`` interleaved rounds."""
    impls = dict.fromkeys(i for rows in plan.values() for i in rows)
    table = {impl: Measurements(Row(impl)) for impl in impls}
    skip_missing(table.values(), REQUIRES)
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
    PROFILES.mkdir(exist_ok=True)
    seconds = _whole_seconds(settings.duration)
    stem = f"{impl}-{suite}"
    parts = [
        _py_spy_part(impl, suite, settings, seconds, rate, top, stem),
        _cprofile_part(impl, suite, settings, seconds, top, stem),
    ]
    write_summary(stem, parts)


SCENARIO_TEXT = {
    "http": f"wrk, {CONNECTIONS} keep-alive connections, GET /json",
    "ws": "100 WebSocket connections x 10 echoes in flight",
}


def _background_load(
    suite: str, pid: int, port: int, seconds: int, settings: Settings, lua: str
) -> subprocess.Popen[str]:
    if suite == "ws":
        timed = dataclasses.replace(settings, warmup=1.0, duration=float(seconds))
        return start_load("flood", ws_args(pid, port, timed), settings)
    cmd = [wrk_binary(), "-t1", f"-c{CONNECTIONS}", f"-d{seconds + 1}s", "-s", lua]
    url = f"http://127.0.0.1:{port}/json"
    pin = pin_to(settings.client_cpu)
    proc = subprocess.Popen([*cmd, url], stdout=subprocess.PIPE, text=True, preexec_fn=pin)
    children.add(proc)
    return proc


def _py_spy_part(
    impl: str, suite: str, settings: Settings, seconds: int, rate: int, top: int, stem: str
) -> str:
    py_spy = py_spy_binary()
    with server_command(server_cmd(impl), settings) as (pid, port):
        load = _background_load(suite, pid, port, 2 * (seconds + 2) + 1, settings, wrk_script())
        time.sleep(1.5)
        raw = record_py_spy(py_spy, pid, seconds, rate, stem, settings)
        finish_load(load)
    text = summarize_profile(raw, impl, top)
    return text.replace("100 connections x 10 messages in flight", SCENARIO_TEXT[suite], 1)


def _cprofile_part(
    impl: str, suite: str, settings: Settings, seconds: int, top: int, stem: str
) -> str:
    path = PROFILES / f"{stem}.pstats"
    path.unlink(missing_ok=True)
    lua = wrk_script()
    with server_command(server_cmd(impl, ["--cprofile", str(path)]), settings) as (pid, port):
        proc = server_proc(pid)
        if suite == "http":
            run_wrk(f"http://127.0.0.1:{port}/json", 1, settings, lua)  # warm-up
            counted = profiled(proc, lambda: _wrk_requests(port, seconds, settings, lua))
        else:
            load = _background_load(suite, pid, port, seconds + 3, settings, lua)
            time.sleep(1.5)
            profiled_seconds = profiled(proc, lambda: timed_sleep(seconds))
            finish_load(load)
            counted = load_rate(load) * profiled_seconds
    text = summarize_cprofile(path, impl, top, estimate=counted)
    if suite == "http":  # a "message" is a request, counted by wrk
        text = text.replace("messages echoed", "requests answered", 1)
        text = text.replace("estimated from the load generator's rate", "wrk's count", 1)
    return text


def _wrk_requests(port: int, seconds: int, settings: Settings, lua: str) -> float:
    counts, _ = run_wrk(f"http://127.0.0.1:{port}/json", seconds, settings, lua)
    return float(counts.get("requests", 0))


# -- main --------------------------------------------------------------------------------


def select_plan(only: str | None, suites: str) -> dict[str, list[str]]:
    wanted_suites = suites.split(",")
    if unknown := set(wanted_suites) - set(SUITES):
        raise SystemExit(f"unknown suite(s): {', '.join(sorted(unknown))} (http, ws)")
    plan = {s: list(SUITES[s]) for s in wanted_suites}
    if (wanted := wanted_impls(only, HTTP_ROWS + WS_ROWS)) is not None:
        plan = {s: [i for i in rows if i in wanted] for s, rows in plan.items()}
    return {s: rows for s, rows in plan.items() if rows}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(
        parser,
        rounds_help="rounds, each on fresh servers",
        only_help="comma-separated servers, e.g. anywire-trio,hypercorn-trio",
    )
    parser.add_argument("--suites", default="http,ws", help="http, ws or both (the default)")
    add_profile_args(parser)
    parser.add_argument("--profile-scenario", choices=["http", "ws"], default="http")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    settings = settings_from_args(args)

    def measure() -> str | None:
        if args.profile:
            ensure_node_packages()
            for impl in args.profile:
                profile(impl, args.profile_scenario, settings, args.profile_rate, args.top)
            return None
        plan = select_plan(args.only, args.suites)
        wrk_binary()
        if "ws" in plan:
            ensure_node_packages()
        host_slowdown(settings)  # the probe's first best time
        table = run_all(plan, settings, wrk_script())
        env = environment(settings, argv)
        save_results(plan, table, settings, env)
        return render(plan, table, settings, env)

    return suite_main(args, "http", "bench/http_run.py", measure, replay, node=False)


if __name__ == "__main__":
    sys.exit(main())
