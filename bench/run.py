"""Side-by-side WebSocket benchmarks: ``python bench/run.py`` (what ``nox -s bench`` runs).

Each server under test runs in its own process (``bench/ws_servers.py``); the load
comes from node (``bench/ws_load.mjs``, npm ``ws``), pinned to another core than the
server. The server's CPU time and memory are read from ``/proc``. The result table is
printed and written to ``docs/benchmarks.md`` below its hand-written introduction.
The harness lives in ``_harness.py``, the tables in ``_report.py``.

``python bench/run.py --profile anywire-asyncio`` instead profiles the server in the
100 x 10 scenario, with py-spy and with cProfile (``_profiling.py``), and writes
``bench/profiles/``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from _harness import (
    DEFLATE_ROWS,
    MAIN_ROWS,
    ROOT,
    Row,
    Settings,
    export_revision,
    kill_children,
    run_all,
)
from _node import ensure_node_packages
from _profiling import profile
from _report import environment, load_results, render, save_results, write_doc

# -- main --------------------------------------------------------------------------------


def choose_cpus(no_pin: bool) -> tuple[int | None, int | None]:
    """Server on the last allowed CPU, load generator (and this script) on the first."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if no_pin or len(cpus) < 2:
        return None, None
    os.sched_setaffinity(0, {cpus[0]})
    return cpus[-1], cpus[0]


def select_rows(only: str | None, deflate: bool) -> list[Row]:
    rows = MAIN_ROWS + (DEFLATE_ROWS if deflate else [])
    if only is None:
        return rows
    wanted = set(only.split(","))
    unknown = wanted - {r.impl for r in MAIN_ROWS}
    if unknown:
        raise SystemExit(f"unknown server(s): {', '.join(sorted(unknown))}")
    return [r for r in rows if r.impl in wanted]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the 100x10 scenario")
    parser.add_argument("--idle-conns", type=int, default=1000)
    parser.add_argument("--handshake-concurrency", type=int, default=10)
    parser.add_argument(
        "--only", help="comma-separated servers, e.g. anywire-asyncio,trio-websocket"
    )
    parser.add_argument("--no-deflate", action="store_true", help="skip the +deflate rows")
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
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="measure again, at most this often, when other programs were busy meanwhile",
    )
    parser.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--at", metavar="REV", help="measure anywire as committed at REV")
    parser.add_argument(
        "--from-json", metavar="PATH", help="render a saved run (bench/results/) instead"
    )
    parser.add_argument("--profile", action="append", metavar="SERVER", help="profile SERVER")
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
        idle_conns=args.idle_conns,
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
        if args.profile:
            for impl in args.profile:
                profile(impl, settings, args.profile_rate, args.top)
            return 0
        if args.from_json:
            table, settings, env = load_results(Path(args.from_json))
        else:
            table = run_all(select_rows(args.only, not args.no_deflate), settings)
            env = environment(settings, sys.argv[1:] if argv is None else list(argv))
            print(f"raw results: {save_results(table, settings, env).relative_to(ROOT)}")
        generated = render(table, settings, env)
        print("\n" + generated)
        if not args.no_write:
            write_doc(generated)
        return 0
    except KeyboardInterrupt:
        print("interrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        kill_children()


if __name__ == "__main__":
    sys.exit(main())
