"""Engine.IO load test: ``python bench/eio_load.py`` (``nox -s load``).

1,000 WebSocket and 200 polling sessions of the npm ``engine.io-client`` on ONE
Engine.IO server (``bench/eio_servers.py IMPL --stats``): anywire on asyncio, then on
trio, and python-engineio (on uvicorn) for comparison (``--servers`` chooses). Each
session echoes with one message in flight (text and binary in turn, each naming its
session and sequence number) for ``--duration`` seconds; the server's heartbeat runs
meanwhile (ping every ``--ping-interval`` s).
Every cycle opens the sessions, exchanges messages and closes them; a second cycle
shows whether memory keeps growing. Reported: errors (must be 0), messages
exchanged, server RSS before and after, memory per session (per WebSocket and per
polling session). The client sessions are spread over ``--procs`` node processes
(``bench/eio_load_clients.mjs``). Writes the section "engineio-load" of
docs/benchmarks.md; exits 1 when anything went wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from _common_report import (
    cpu_model,
    date_and_command,
    node_packages,
    node_version,
    versions,
    write_results,
)
from _harness import (
    BENCH,
    children,
    choose_cpus,
    kill_children,
    pin_to,
    process_cpu,
    read_line,
    suite_main,
)

SERVERS = BENCH / "eio_servers.py"
CLIENTS = BENCH / "eio_load_clients.mjs"
MIB = 1024

Result = dict[str, Any]


class LoadFailed(RuntimeError):
    """A process of the load test did not start or did not answer."""


# -- processes ---------------------------------------------------------------------------


def _raise_fd_limit_and_pin(cpu: int | None) -> Any:
    pin = pin_to(cpu)

    def setup() -> None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if pin is not None:
            pin()

    return setup


def _start(cmd: Sequence[str], cpu: int | None, stderr: IO[bytes], stdin: bool = False) -> Any:
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        preexec_fn=_raise_fd_limit_and_pin(cpu),
        start_new_session=True,
    )
    children.add(proc)
    return proc


@contextlib.contextmanager
def server(impl: str, args: argparse.Namespace, cpu: int | None) -> Iterator[Server]:
    cmd = [
        sys.executable,
        str(SERVERS),
        impl,
        "--port",
        "0",
        "--stats",
        "--ping-interval",
        str(args.ping_interval),
        "--ping-timeout",
        str(args.ping_timeout),
    ]
    with tempfile.TemporaryFile() as log:
        proc = _start(cmd, cpu, log)
        try:
            port = int(read_line(proc, "PORT ").split()[1])
            yield Server(proc, port, log)
        finally:
            kill_children()


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    log: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> Result:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as response:
            data: Result = json.loads(response.read())
        return data

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise LoadFailed("the server has no VmRSS")

    def cpu_seconds(self) -> float:
        return process_cpu(self.proc.pid)

    def log_lines(self) -> list[str]:
        self.log.seek(0)
        return self.log.read().decode(errors="replace").splitlines()


class Clients:
    """The node client processes, driven line by line."""

    def __init__(self, url: str, procs: int, cpu: int | None, log: IO[bytes]) -> None:
        self.log = log
        self.procs = [
            _start(["node", str(CLIENTS), "--url", url, "--name", f"c{i}"], cpu, log, stdin=True)
            for i in range(procs)
        ]

    def command(self, commands: list[Result], timeout: float) -> list[Result]:
        """Send ``commands[i]`` to process i; wait for every answer."""
        for proc, cmd in zip(self.procs, commands, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(cmd) + "\n")
            proc.stdin.flush()
        return [self._answer(proc, timeout) for proc in self.procs]

    def _answer(self, proc: subprocess.Popen[str], timeout: float) -> Result:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        if not line:
            self.log.seek(0)
            said = self.log.read().decode(errors="replace").strip().splitlines()[-3:]
            raise LoadFailed(f"a client process did not answer (exit code {proc.poll()}): {said}")
        answer: Result = json.loads(line)
        return answer

    def cpu_seconds(self) -> float:
        """CPU seconds used by all client processes so far."""
        return sum(process_cpu(proc.pid) for proc in self.procs)

    def split(self, total: int) -> list[int]:
        n = len(self.procs)
        return [total // n + (1 if i < total % n else 0) for i in range(n)]


# -- one cycle ---------------------------------------------------------------------------


@dataclass
class Cycle:
    rss: dict[str, int] = field(default_factory=dict)
    opened: dict[str, int] = field(default_factory=dict)
    connect_failures: int = 0
    open_seconds: dict[str, float] = field(default_factory=dict)
    run: Result = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    disconnects_at_close: dict[str, int] = field(default_factory=dict)


def open_sessions(s: Server, c: Clients, transport: str, count: int, cycle: Cycle) -> None:
    cmds = [{"cmd": "open", "transport": transport, "count": n} for n in c.split(count)]
    answers = c.command(cmds, timeout=120)
    cycle.opened[transport] = sum(a["opened"] for a in answers)
    cycle.connect_failures += sum(a["connect_failures"] for a in answers)
    cycle.open_seconds[transport] = max(a["seconds"] for a in answers)
    settle()
    cycle.rss[f"after {transport}"] = s.rss_kib()


def settle() -> None:
    """Give the server a moment to finish what the last answers left it (timers, GC)."""
    time.sleep(1.0)


def run_cycle(s: Server, c: Clients, args: argparse.Namespace) -> Cycle:
    cycle = Cycle()
    cycle.rss["before"] = s.rss_kib()
    open_sessions(s, c, "websocket", args.ws, cycle)
    open_sessions(s, c, "polling", args.polling, cycle)
    expected = cycle.opened["websocket"] + cycle.opened["polling"]
    if (sessions := s.stats()["sessions"]) != expected:
        cycle.errors.append(f"the server counts {sessions} sessions, the clients {expected}")
    before = s.stats()
    cycle.run = exchange(s, c, args)
    after = s.stats()
    cycle.rss["after exchanging"] = s.rss_kib()
    if lost := sum(after["disconnects"].values()) - sum(before["disconnects"].values()):
        cycle.errors.append(f"{lost} sessions ended while exchanging: {after['disconnects']}")
    c.command([{"cmd": "close"}] * len(c.procs), timeout=60)
    cycle.disconnects_at_close = wait_closed(s, after["disconnects"], cycle)
    cycle.rss["after closing"] = s.rss_kib()
    return cycle


def exchange(s: Server, c: Clients, args: argparse.Namespace) -> Result:
    """Every session echoes for ``args.duration`` s; the server's CPU and peak RSS."""
    cpu0, t0 = s.cpu_seconds(), time.monotonic()
    client_cpu0 = c.cpu_seconds()
    for proc in c.procs:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"cmd": "run", "seconds": args.duration}) + "\n")
        proc.stdin.flush()
    peak = 0
    while time.monotonic() - t0 < args.duration:
        peak = max(peak, s.rss_kib())
        time.sleep(0.5)
    answers = [c._answer(proc, timeout=30) for proc in c.procs]
    cpu = s.cpu_seconds() - cpu0
    client_cpu = c.cpu_seconds() - client_cpu0
    peak = max(peak, s.rss_kib())
    by: dict[str, Result] = {}
    for answer in answers:
        for transport, summary in answer["by_transport"].items():
            mine = by.setdefault(transport, {"sessions": 0, "echoes": 0, "fewest": None})
            mine["sessions"] += summary["sessions"]
            mine["echoes"] += summary["echoes"]
            fewest = [x for x in (mine["fewest"], summary["fewest"]) if x is not None]
            mine["fewest"] = min(fewest) if fewest else None
    seconds = statistics.mean(a["seconds"] for a in answers)
    echoes = sum(t["echoes"] for t in by.values())
    return {
        "seconds": seconds,
        "by_transport": by,
        "echoes": echoes,
        "rate": echoes / seconds,
        "server_cpu_s": cpu,
        "server_cpu_share": cpu / seconds,
        "client_cpu_share": client_cpu / seconds,
        "cpu_us_per_msg": cpu * 1e6 / echoes if echoes else None,
        "peak_rss_kib": peak,
        "outstanding": sum(a["outstanding"] for a in answers),
        "failures": sum(a["failures"] for a in answers),
        "first_failure": next((a["first_failure"] for a in answers if a["first_failure"]), None),
    }


def wait_closed(s: Server, before: dict[str, int], cycle: Cycle) -> dict[str, int]:
    """Wait (10 s at most) until the server has no session left; the close reasons."""
    deadline = time.monotonic() + 10
    while (stats := s.stats())["sessions"] and time.monotonic() < deadline:
        time.sleep(0.2)
    if stats["sessions"]:
        cycle.errors.append(f"{stats['sessions']} sessions still open 10 s after closing")
    settle()
    return {
        k: v - before.get(k, 0) for k, v in stats["disconnects"].items() if v - before.get(k, 0)
    }


def check(cycle: Cycle) -> None:
    """Add every problem of ``cycle`` to its errors."""
    if cycle.connect_failures:
        cycle.errors.append(f"{cycle.connect_failures} sessions could not connect")
    run = cycle.run
    if run.get("failures"):
        cycle.errors.append(f"{run['failures']} client failures, first: {run['first_failure']}")
    if run.get("outstanding"):
        cycle.errors.append(f"{run['outstanding']} echoes never came back")
    for transport, summary in run.get("by_transport", {}).items():
        if not summary["fewest"]:
            cycle.errors.append(f"a {transport} session exchanged no message")


# -- the test ----------------------------------------------------------------------------


def warm_up(s: Server, c: Clients) -> None:
    """A few sessions of each kind, so that the first cycle's RSS counts sessions, not
    code and caches loaded on first use."""
    for transport in ("websocket", "polling"):
        c.command([{"cmd": "open", "transport": transport, "count": 10}] * len(c.procs), 60)
    c.command([{"cmd": "run", "seconds": 1}] * len(c.procs), 30)
    c.command([{"cmd": "close"}] * len(c.procs), 60)
    settle()


def test_server(impl: str, args: argparse.Namespace) -> Result:
    server_cpu, client_cpu = args.cpus
    print(f"{impl}: {args.ws} websocket + {args.polling} polling sessions", flush=True)
    cycles = []
    with server(impl, args, server_cpu) as s, tempfile.TemporaryFile() as client_log:
        clients = Clients(s.url, args.procs, client_cpu, client_log)
        warm_up(s, clients)
        for n in range(1, args.cycles + 1):
            cycle = run_cycle(s, clients, args)
            check(cycle)
            cycles.append(cycle)
            print(f"  cycle {n}: {summary_line(cycle, args)}", flush=True)
        log = [line for line in s.log_lines() if line.strip()]
    if log:
        cycles[-1].errors.append(f"the server logged {len(log)} lines, first: {log[0]}")
    return {"server": impl, "cycles": [vars(c) for c in cycles], "server_log": log[:50]}


def summary_line(cycle: Cycle, args: argparse.Namespace) -> str:
    run = cycle.run
    per = per_session(cycle.rss, args)
    return (
        f"{run.get('echoes', 0):,} messages echoed ({run.get('rate', 0):,.0f}/s), "
        f"{per['all']:.1f} KiB per session (websocket {per['websocket']:.1f}, "
        f"polling {per['polling']:.1f}), errors: {len(cycle.errors)}"
        + (f" — {cycle.errors[0]}" if cycle.errors else "")
    )


def per_session(rss: dict[str, int], args: argparse.Namespace) -> dict[str, float]:
    ws = (rss["after websocket"] - rss["before"]) / max(args.ws, 1)
    polling = (rss["after polling"] - rss["after websocket"]) / max(args.polling, 1)
    total = (rss["after polling"] - rss["before"]) / max(args.ws + args.polling, 1)
    return {"all": total, "websocket": ws, "polling": polling}


# -- the report ----------------------------------------------------------------------------


def _mib(kib: int) -> str:
    return f"{kib / MIB:,.1f}"


def render(results: list[Result], args: argparse.Namespace, env: list[str]) -> str:
    lines = [
        "## Engine.IO load test",
        "",
        *env,
        "",
        f"{args.ws:,} WebSocket and {args.polling:,} polling sessions of the npm "
        f"`engine.io-client` on one server, each echoing with one message in flight "
        f"(text and binary in turn, checked) for {args.duration:g} s, heartbeat every "
        f"{args.ping_interval:g} s (timeout {args.ping_timeout:g} s); {args.cycles} cycle(s) of "
        "open, exchange, close per server process.",
        "",
        "| server | cycle | errors | messages echoed (ws / polling) | msgs/s "
        "| server CPU µs/msg | cores busy: server / clients "
        "| fewest echoes of a session (ws / polling) "
        "| RSS MiB: before → ws open → all open → after exchanging → after closing (peak) "
        "| KiB per session: all / ws / polling |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|--:|",
    ]
    for result in results:
        for n, cycle in enumerate(result["cycles"], 1):
            lines.append(table_line(result["server"], n, cycle, args))
    lines += [
        "",
        "Memory per session is the RSS growth while the sessions open, divided by their "
        "number: cycle 1 measures it; a later cycle reuses the memory the closed sessions of "
        "the previous one left to the process (Python rarely gives it back), so its growth "
        'shows only what accumulates (a leak would). "Fewest echoes" is the session '
        "served least: every session echoes as fast as it can, so the side that runs out of "
        "CPU first (cores busy; the clients share one core, the server has the other) sets "
        "the rate, and a polling message costs several HTTP requests (the node client opens "
        "a new connection for each) where a WebSocket message costs one frame each way.",
        "",
        "Errors and close reasons:",
        "",
    ]
    for result in results:
        for n, cycle in enumerate(result["cycles"], 1):
            errors = "; ".join(cycle["errors"]) or "none"
            reasons = ", ".join(f"{k} {v}" for k, v in cycle["disconnects_at_close"].items())
            lines.append(
                f"- {result['server']}, cycle {n}: errors: {errors}; "
                f"connect failures {cycle['connect_failures']}; server-side close reasons "
                f"when the clients closed: {reasons or 'none'}."
            )
    total = sum(len(c["errors"]) for r in results for c in r["cycles"])
    lines += ["", f"Result: **{'passed' if total == 0 else f'failed ({total} errors)'}**."]
    return "\n".join(lines) + "\n"


def table_line(impl: str, n: int, cycle: Result, args: argparse.Namespace) -> str:
    run, rss = cycle["run"], cycle["rss"]
    by = run.get("by_transport", {})
    ws, polling = by.get("websocket", {}), by.get("polling", {})
    per = per_session(rss, args)
    cpu = run.get("cpu_us_per_msg")
    return (
        f"| {impl} | {n} | {len(cycle['errors'])} "
        f"| {ws.get('echoes', 0):,} / {polling.get('echoes', 0):,} | {run.get('rate', 0):,.0f} "
        f"| {'—' if cpu is None else f'{cpu:.1f}'} "
        f"| {run.get('server_cpu_share', 0):.2f} / {run.get('client_cpu_share', 0):.2f} "
        f"| {ws.get('fewest')} / {polling.get('fewest')} "
        f"| {_mib(rss['before'])} → {_mib(rss['after websocket'])} → "
        f"{_mib(rss['after polling'])} → {_mib(rss['after exchanging'])} → "
        f"{_mib(rss['after closing'])} ({_mib(run.get('peak_rss_kib', 0))}) "
        f"| {per['all']:.1f} / {per['websocket']:.1f} / {per['polling']:.1f} |"
    )


def environment(args: argparse.Namespace, argv: Sequence[str]) -> list[str]:
    server_cpu, client_cpu = args.cpus
    pinning = "not pinned"
    if server_cpu is not None:
        pinning = f"server on CPU {server_cpu}, {args.procs} node processes on CPU {client_cpu}"
    return [
        *date_and_command("bench/eio_load.py", argv),
        f"- Python {platform.python_version()}, {versions(['anyio', 'trio'])}; "
        f"node {node_version()}, {node_packages(['engine.io-client'])}",
        f"- CPU: {cpu_model()}; {pinning}",
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ws", type=int, default=1000, help="WebSocket sessions")
    parser.add_argument("--polling", type=int, default=200, help="polling sessions")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of exchange")
    parser.add_argument("--cycles", type=int, default=2, help="open/exchange/close cycles")
    parser.add_argument("--procs", type=int, default=2, help="node client processes")
    parser.add_argument(
        "--servers",
        default="anywire-asyncio,anywire-trio,python-engineio-uvicorn",
        help="comma-separated: anywire-asyncio, anywire-trio, python-engineio-uvicorn",
    )
    parser.add_argument("--ping-interval", type=float, default=5.0, help="seconds")
    parser.add_argument("--ping-timeout", type=float, default=5.0, help="seconds")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    args.cpus = choose_cpus(args.no_pin)
    failed = False

    def measure() -> str:
        nonlocal failed
        impls = args.servers.split(",")
        minutes = len(impls) * (args.cycles * (args.duration + 13) + 5) / 60
        print(f"about {minutes:.1f} minutes", flush=True)
        results = []
        for impl in impls:
            try:
                results.append(test_server(impl, args))
            except (LoadFailed, OSError) as exc:
                print(f"  {impl}: {exc}", flush=True)
                results.append({"server": impl, "cycles": [], "error": str(exc)})
        env = environment(args, argv)
        write_results("eio-load", {"args": vars(args), "environment": env, "results": results})
        failed = any("error" in r or any(c["errors"] for c in r["cycles"]) for r in results)
        return render([r for r in results if r["cycles"]], args, env)

    return suite_main(args, "engineio-load", "bench/eio_load.py", measure) or int(failed)


if __name__ == "__main__":
    sys.exit(main())
