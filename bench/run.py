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
import sys
from collections.abc import Sequence

from _harness import (
    DEFLATE_ROWS,
    MAIN_ROWS,
    Row,
    add_common_args,
    run_all,
    settings_from_args,
    suite_main,
    wanted_impls,
)
from _profiling import add_profile_args, profile
from _report import environment, render, replay, save_results

# -- main --------------------------------------------------------------------------------


def select_rows(only: str | None, deflate: bool) -> list[Row]:
    rows = MAIN_ROWS + (DEFLATE_ROWS if deflate else [])
    wanted = wanted_impls(only, (r.impl for r in MAIN_ROWS))
    return rows if wanted is None else [r for r in rows if r.impl in wanted]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(
        parser,
        rounds_help="rounds of the 100x10 scenario",
        only_help="comma-separated servers, e.g. anywire-asyncio,trio-websocket",
    )
    parser.add_argument("--idle-conns", type=int, default=1000)
    parser.add_argument("--handshake-concurrency", type=int, default=10)
    parser.add_argument("--no-deflate", action="store_true", help="skip the +deflate rows")
    add_profile_args(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    settings = settings_from_args(args)

    def measure() -> str | None:
        if args.profile:
            for impl in args.profile:
                profile(impl, settings, args.profile_rate, args.top)
            return None
        table = run_all(select_rows(args.only, not args.no_deflate), settings)
        env = environment(settings, argv)
        save_results(table, settings, env)
        return render(table, settings, env)

    return suite_main(args, "websocket", "bench/run.py", measure, replay)


if __name__ == "__main__":
    sys.exit(main())
