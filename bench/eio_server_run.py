"""Engine.IO servers side by side: ``python bench/eio_server_run.py`` (``nox -s bench_engineio``).

anywire's Engine.IO server (asyncio and trio, on anywire's runner), python-engineio
(ASGI on uvicorn) and node ``engine.io``, each in its own process
(``bench/eio_servers.py``) pinned to one core; the load comes from the npm
``engine.io-client`` (``bench/eio_load.mjs``) on the other core, forced onto the
WebSocket or the polling transport. Server CPU time is read from ``/proc``. The
harness (processes, pinning, waiting for a quiet machine) is ``_harness.py``'s; the
report is ``_eio_report.py``. Writes the section "engineio-server" of
docs/benchmarks.md. See bench/README.md.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from _doc import write_section
from _eio_report import environment, load_results, render, save_results
from _harness import (
    BENCH,
    ROOT,
    Measurements,
    Result,
    Row,
    ServerFailed,
    Settings,
    _module_exists,
    export_revision,
    kill_children,
    least_disturbed,
    run_load,
    server_command,
)
from _node import ensure_node_packages
from run import choose_cpus

LOAD = BENCH / "eio_load.mjs"
SERVERS = BENCH / "eio_servers.py"
IMPLS = ["anywire-asyncio", "anywire-trio", "python-engineio-uvicorn", "node-engine.io"]
REQUIRES = {
    "anywire-trio": ["trio"],
    "python-engineio-uvicorn": ["engineio", "uvicorn"],
}
#: The scenarios measured again in every round after the first.
FLOODS = ["flood-ws", "flood-polling"]
#: Seconds a measurement costs beyond warm-up and window: quiet check, node, sessions.
OVERHEAD = 2.0


def scenarios(settings: Settings) -> dict[str, list[str]]:
    """Scenario name -> the node arguments (its first one is eio_load.mjs's scenario)."""
    timed = ["--warmup", str(settings.warmup), "--duration", str(settings.duration)]
    conc = str(settings.handshake_concurrency)
    table = {}
    for short, transport in (("ws", "websocket"), ("polling", "polling")):
        on = ["--transport", transport, *timed]
        table[f"rtt-{short}"] = ["rtt", *on]
        table[f"flood-{short}"] = ["flood", "--conns", "100", "--inflight", "10", *on]
        table[f"handshake1-{short}"] = ["handshake", "--concurrency", "1", *on]
        table[f"handshakeN-{short}"] = ["handshake", "--concurrency", conc, *on]
    return table


def run_round(m: Measurements, settings: Settings, names: list[str]) -> None:
    """The scenarios ``names`` against one fresh server process of ``m.row``."""
    cmd = [sys.executable, str(SERVERS), m.row.impl, "--port", "0"]
    timeout = settings.warmup + settings.duration + 60
    try:
        with server_command(cmd, settings) as (pid, port):
            for name in names:
                scenario, *args = scenarios(settings)[name]
                args += ["--url", f"http://127.0.0.1:{port}", "--pid", str(pid)]

                def measure(scenario: str = scenario, args: list[str] = args) -> Result:
                    return run_load(scenario, args, settings, timeout, script=LOAD)

                m.add(name, least_disturbed(measure, m.row, name, settings))
    except ServerFailed as exc:
        for name in names:
            m.add(name, {"error": str(exc)})
        print(f"  {m.row.label:<28} ERROR {exc}", flush=True)


def run_all(impls: list[str], settings: Settings) -> list[Measurements]:
    """Every scenario once, then the 100x10 ones in further rounds, interleaved."""
    table = [Measurements(Row(impl)) for impl in impls]
    live = []
    for m in table:
        missing = [name for name in REQUIRES.get(m.row.impl, []) if not _module_exists(name)]
        if missing:
            m.skipped = f"not installed: {', '.join(missing)}"
            print(f"  {m.row.label:<28} skipped ({m.skipped})", flush=True)
        else:
            live.append(m)
    print(f"round 1 of {settings.rounds}: every scenario", flush=True)
    for m in live:
        run_round(m, settings, list(scenarios(settings)))
    for n in range(2, settings.rounds + 1):
        print(f"round {n} of {settings.rounds}: 100x10 only", flush=True)
        for m in live:
            run_round(m, settings, FLOODS)
    return table


def estimate_minutes(servers: int, settings: Settings) -> float:
    """How long a run takes on a quiet machine."""
    count = servers * (len(scenarios(settings)) + (settings.rounds - 1) * len(FLOODS))
    each = settings.warmup + settings.duration + OVERHEAD
    return (count * each + servers * settings.rounds * 1.0) / 60


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the 100x10 scenarios")
    parser.add_argument("--handshake-concurrency", type=int, default=10)
    parser.add_argument("--only", help=f"comma-separated servers of {', '.join(IMPLS)}")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--quiet-wait", type=float, default=10.0, help="see bench/run.py")
    parser.add_argument("--quiet-cpus", type=float, default=0.15, help="see bench/run.py")
    parser.add_argument("--retries", type=int, default=2, help="see bench/run.py")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--at", metavar="REV", help="measure anywire as committed at REV")
    parser.add_argument(
        "--from-json", metavar="PATH", help="render a saved run (bench/results/) instead"
    )
    return parser.parse_args(argv)


def select(only: str | None) -> list[str]:
    if only is None:
        return IMPLS
    wanted = only.split(",")
    if unknown := set(wanted) - set(IMPLS):
        raise SystemExit(f"unknown server(s): {', '.join(sorted(unknown))}")
    return [impl for impl in IMPLS if impl in wanted]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    server_cpu, client_cpu = choose_cpus(args.no_pin)
    settings = Settings(
        duration=args.duration,
        warmup=args.warmup,
        rounds=args.rounds,
        idle_conns=0,
        handshake_concurrency=args.handshake_concurrency,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        quiet_wait=args.quiet_wait,
        quiet_cpus=args.quiet_cpus,
        retries=args.retries,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.at:
        export_revision(args.at)
    ensure_node_packages()
    try:
        if args.from_json:
            table, settings, env = load_results(Path(args.from_json))
        else:
            impls = select(args.only)
            minutes = estimate_minutes(len(impls), settings)
            print(f"about {minutes:.0f} minutes on a quiet machine (longer while it is busy)")
            table = run_all(impls, settings)
            env = environment(settings, sys.argv[1:] if argv is None else list(argv))
            print(f"raw results: {save_results(table, settings, env).relative_to(ROOT)}")
        generated = render(table, settings, env)
        print("\n" + generated)
        if not args.no_write:
            write_section("engineio-server", "bench/eio_server_run.py", generated)
        return 0
    except KeyboardInterrupt:
        print("interrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        kill_children()


if __name__ == "__main__":
    sys.exit(main())
