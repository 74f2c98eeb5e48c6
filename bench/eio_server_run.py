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
import sys
from collections.abc import Collection, Sequence

from _eio_report import environment, render, replay, save_results
from _harness import (
    BENCH,
    Measurements,
    Result,
    Row,
    Settings,
    add_common_args,
    on_fresh_server,
    run_load,
    run_rounds,
    settings_from_args,
    skip_missing,
    suite_main,
    wanted_impls,
    window_timeout,
)

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


def run_round(m: Measurements, settings: Settings, only: Collection[str] | None) -> None:
    """The scenarios (all, or those in ``only``) against one fresh server process."""
    table = scenarios(settings)
    timeout = window_timeout(settings)

    def measure(name: str, pid: int, port: int) -> Result:
        scenario, *args = table[name]
        args += ["--url", f"http://127.0.0.1:{port}", "--pid", str(pid)]
        return run_load(scenario, args, settings, timeout, script=LOAD)

    cmd = [sys.executable, str(SERVERS), m.row.impl, "--port", "0"]
    names = [name for name in table if only is None or name in only]
    on_fresh_server(m, cmd, names, settings, measure)


def run_all(impls: list[str], settings: Settings) -> list[Measurements]:
    """Every scenario once, then the 100x10 ones in further rounds, interleaved."""
    table = [Measurements(Row(impl)) for impl in impls]
    live = skip_missing(table, REQUIRES)

    def run(m: Measurements, only: Collection[str] | None) -> None:
        run_round(m, settings, only)

    run_rounds(live, settings, run, FLOODS, "100x10")
    return table


def estimate_minutes(servers: int, settings: Settings) -> float:
    """How long a run takes on a quiet machine."""
    count = servers * (len(scenarios(settings)) + (settings.rounds - 1) * len(FLOODS))
    each = settings.warmup + settings.duration + OVERHEAD
    return (count * each + servers * settings.rounds * 1.0) / 60


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_common_args(
        parser,
        rounds_help="rounds of the 100x10 scenarios",
        only_help=f"comma-separated servers of {', '.join(IMPLS)}",
    )
    parser.add_argument("--handshake-concurrency", type=int, default=10)
    return parser.parse_args(argv)


def select(only: str | None) -> list[str]:
    wanted = wanted_impls(only, IMPLS)
    return IMPLS if wanted is None else [impl for impl in IMPLS if impl in wanted]


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    settings = settings_from_args(args)

    def measure() -> str:
        impls = select(args.only)
        minutes = estimate_minutes(len(impls), settings)
        print(f"about {minutes:.0f} minutes on a quiet machine (longer while it is busy)")
        table = run_all(impls, settings)
        env = environment(settings, argv)
        save_results(table, settings, env)
        return render(table, settings, env)

    return suite_main(args, "engineio-server", "bench/eio_server_run.py", measure, replay)


if __name__ == "__main__":
    sys.exit(main())
