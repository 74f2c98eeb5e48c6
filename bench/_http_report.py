"""The report of bench/http_run.py: tables, the issue's goals, the environment, raw JSON."""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from _common_report import (
    cell,
    cpu_line,
    date_and_command,
    errors_section,
    fmt,
    load_run,
    marks,
    median_of,
    node_package,
    node_version,
    ok,
    percent,
    pinning,
    round_cells,
    round_ratios,
    run_data,
    verdict,
    versions,
    write_results,
)
from _harness import Measurements, Result, Settings

#: The issue's reference figures (2-core Linux, Python 3.11, node 20): server CPU µs per
#: echoed WebSocket message through a raw ASGI echo app, 100 connections x 10 in flight.
ISSUE_WS_US = {
    "hypercorn-asyncio": 23.0,
    "hypercorn-trio": 84.0,
    "uvicorn-wsproto": 19.5,
    "uvicorn-websockets": 14.4,
}
REFERENCE_HTTP = "uvicorn-httptools"
REFERENCE_WS = "uvicorn-websockets"

Plan = dict[str, list[str]]
Table = dict[str, Measurements]


# -- numbers -----------------------------------------------------------------------------


def _runs(m: Measurements | None, suite: str) -> list[Result]:
    return [] if m is None else ok(m.results.get(suite))


def per_round(m: Measurements | None, suite: str, key: str) -> list[float | None]:
    if m is None:
        return []
    return [None if "error" in r else r.get(key) for r in m.results.get(suite, [])]


def _cell(m: Measurements, suite: str, key: str, digits: int = 0) -> str:
    if median_of(m, suite, key) is None and m.results.get(suite):
        return "error"  # every run failed, or none gave ``key``
    return cell(m, suite, key, digits)


def _ratio(ours: float | None, theirs: float | None) -> str:
    return "—" if ours is None or not theirs else f"{ours / theirs:.2f}"


# -- tables ------------------------------------------------------------------------------


def http_table(rows: list[str], table: Table) -> list[str]:
    ref = median_of(table.get(REFERENCE_HTTP), "http", "rate")

    def cells(impl: str, m: Measurements) -> list[str]:
        p50, p99 = median_of(m, "http", "p50_us"), median_of(m, "http", "p99_us")
        latency = "—" if p50 is None or p99 is None else f"{p50 / 1e3:.1f} / {p99 / 1e3:.1f}"
        vs_ref = _ratio(median_of(m, "http", "rate"), ref)
        return [_cell(m, "http", "rate"), vs_ref, _cell(m, "http", "cpu_us_per_op", 1), latency]

    header = (
        f"| server | requests/s | vs {REFERENCE_HTTP} | server CPU µs/request "
        "| latency p50 / p99 (ms) | server CPU busy | wrk CPU busy |"
    )
    return _server_table(header, "http", rows, table, cells)


def ws_table(rows: list[str], table: Table) -> list[str]:
    ref = median_of(table.get(REFERENCE_WS), "ws", "cpu_us_per_op")

    def cells(impl: str, m: Measurements) -> list[str]:
        us = median_of(m, "ws", "cpu_us_per_op")
        return [
            _cell(m, "ws", "rate"),
            _cell(m, "ws", "cpu_us_per_op", 1),
            _ratio(us, ref),
            fmt(ISSUE_WS_US.get(impl), 1),
        ]

    header = (
        f"| server | msgs/s (100x10) | server CPU µs/msg | vs {REFERENCE_WS} (CPU) "
        "| issue's µs/msg | server CPU busy | node CPU busy |"
    )
    return _server_table(header, "ws", rows, table, cells)


def _server_table(
    header: str,
    suite: str,
    rows: list[str],
    table: Table,
    cells: Callable[[str, Measurements], list[str]],
) -> list[str]:
    """A row per server of ``rows``: its name, ``cells(impl, m)``, then the share of a CPU
    the server and the load generator kept busy during ``suite``; a skipped server says
    why. ``header`` names the seven columns."""
    lines = [header, "|---|--:|--:|--:|--:|--:|--:|"]
    for impl in rows:
        m = table[impl]
        if m.skipped:
            lines.append(f"| {impl} | {m.skipped} | | | | | |")
            continue
        busy = [percent(median_of(m, suite, f"{side}_cpu_util")) for side in ("server", "client")]
        lines.append("| " + " | ".join([impl, *cells(impl, m), *busy]) + " |")
    return lines


def rounds_table(plan: Plan, table: Table) -> list[str]:
    lines = [
        "| suite | server | per round | server CPU µs per request or message, per round "
        "| spread of µs | other CPUs busy (max) | probe slowdown (max) |",
        "|---|---|---|---|--:|--:|--:|",
    ]
    for suite, rows in plan.items():
        unit = "req/s" if suite == "http" else "msgs/s"
        for impl in rows:
            if runs := _runs(table[impl], suite):
                cells = round_cells(runs, busy=False, unit=unit)
                lines.append(f"| {suite} | {impl} | {cells}")
    return lines


# -- the issue's goals -------------------------------------------------------------------


def _round_ratios(table: Table, suite: str, key: str, ours: str, theirs: str) -> str:
    """Ratios within each round (see :func:`round_ratios`)."""
    return round_ratios(
        per_round(table.get(ours), suite, key), per_round(table.get(theirs), suite, key)
    )


def _shaky(table: Table, suite: str, *impls: str) -> str:
    if any(i in table and marks(_runs(table[i], suite)) for i in impls):
        return " (from a number marked `*` or `‡`: see the notes; measure again)"
    return ""


def ws_goals(table: Table) -> list[str]:
    def us(impl: str) -> float | None:
        return median_of(table.get(impl), "ws", "cpu_us_per_op")

    lines = []
    for backend, share, goal in (("asyncio", 1.0, "below"), ("trio", 0.5, "at most half of")):
        ours, theirs = f"anywire-{backend}", f"hypercorn-{backend}"
        a, b = us(ours), us(theirs)
        if a is None or b is None:
            continue
        ok = a < b if share == 1.0 else a <= share * b
        lines.append(
            f"- WebSocket CPU per message on {backend} {goal} hypercorn's: anywire {a:.1f} µs, "
            f"hypercorn {b:.1f} µs (issue: {ISSUE_WS_US[theirs]} µs), ratio {a / b:.2f}"
            f"{_round_ratios(table, 'ws', 'cpu_us_per_op', ours, theirs)}: {verdict(ok)}"
            f"{_shaky(table, 'ws', ours, theirs)}."
        )
    a, b = us("anywire-asyncio"), us(REFERENCE_WS)
    if a is not None and b is not None:
        spread = _round_ratios(table, "ws", "cpu_us_per_op", "anywire-asyncio", REFERENCE_WS)
        lines.append(
            f"- Approach uvicorn with websockets (asyncio loop): anywire-asyncio {a:.1f} µs, "
            f"{REFERENCE_WS} {b:.1f} µs (issue: {ISSUE_WS_US[REFERENCE_WS]} µs), ratio "
            f"{a / b:.2f}{spread} (1.00 would be even)."
        )
    return lines


def http_goals(table: Table) -> list[str]:
    def rate(impl: str) -> float | None:
        return median_of(table.get(impl), "http", "rate")

    lines = []
    for backend in ("asyncio", "trio"):
        ours = f"anywire-{backend}"
        a = rate(ours)
        if a is None:
            continue
        for theirs in (f"hypercorn-{backend}", "uvicorn-h11"):
            b = rate(theirs)
            if b is None:
                continue
            lines.append(
                f"- HTTP requests/s at or above {theirs}: {ours} {a:,.0f}, {theirs} {b:,.0f}, "
                f"ratio {a / b:.2f}{_round_ratios(table, 'http', 'rate', ours, theirs)}: "
                f"{verdict(a >= b)}{_shaky(table, 'http', ours, theirs)}."
            )
        ref = rate(REFERENCE_HTTP)
        if ref is not None:
            lines.append(
                f"- Against {REFERENCE_HTTP} (reported, no goal): {ours} {a:,.0f}, "
                f"{REFERENCE_HTTP} {ref:,.0f}, ratio {a / ref:.2f}"
                f"{_round_ratios(table, 'http', 'rate', ours, REFERENCE_HTTP)}."
            )
    return lines


# -- the environment ---------------------------------------------------------------------

PACKAGES = [
    "anywire", "anyio", "trio", "h11", "wsproto", "uvicorn", "httptools", "uvloop",
    "websockets", "hypercorn",
]  # fmt: skip


def _wrk_version() -> str:
    try:
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    except OSError:
        return "wrk not installed"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0].split(" [")[0] if text else "wrk"


def environment(settings: Settings, argv: Sequence[str]) -> list[str]:
    return [
        *date_and_command("bench/http_run.py", argv),
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"node {node_version()}, {_wrk_version()}; {versions(PACKAGES)}; "
        f"npm ws {node_package('ws')}",
        cpu_line(pinning(settings, "wrk and node")),
        f"- Each measurement on a fresh server process: {settings.warmup:g} s warm-up, then "
        f"{settings.duration:g} s measured (wrk: whole seconds); {settings.rounds} "
        f"round{'s' if settings.rounds != 1 else ''}, interleaved across servers; medians shown",
    ]


LEGEND = [
    "Servers: `anywire-asyncio` and `anywire-trio` run `anywire.serve(app, backend=...)`; "
    "`uvicorn-h11` and `uvicorn-httptools` name uvicorn's HTTP parser, `uvicorn-websockets` "
    "and `uvicorn-wsproto` its WebSocket implementation (httptools for the handshake), all on "
    "the stock asyncio loop; the `-uvloop` rows are the same on uvloop (uvicorn's default when "
    "uvloop is installed), for reference; `hypercorn-asyncio` and `hypercorn-trio` are "
    "hypercorn's two workers. Access logs are off; everything else is each server's default. "
    "The app is the same raw ASGI app everywhere (`bench/http_servers.py`).",
]


# -- the report --------------------------------------------------------------------------


def render(plan: Plan, table: Table, settings: Settings, env: list[str]) -> str:
    """The generated ``http`` section of docs/benchmarks.md."""
    lines = ["## The ASGI runner beside uvicorn and hypercorn", "", *env, "", *LEGEND, ""]
    if "http" in plan:
        lines += [
            "### HTTP: `GET /json`, wrk, 50 keep-alive connections, one thread",
            "",
            *http_table(plan["http"], table),
            "",
        ]
    if "ws" in plan:
        lines += [
            "### WebSocket echo through the ASGI app: 100 connections x 10 in flight",
            "",
            *ws_table(plan["ws"], table),
            "",
        ]
    goals = http_goals(table) + ws_goals(table)
    lines += [
        "### The issue's goals",
        "",
        "Goal: HTTP requests/s at or above hypercorn and uvicorn with h11 on both backends, "
        "reported against uvicorn with httptools; server CPU per echoed WebSocket message "
        "below hypercorn on asyncio, at most half of hypercorn on trio, approaching uvicorn "
        "with websockets.",
        "",
        *(goals or ["- No goal could be checked in this run."]),
        "",
        "### Round by round",
        "",
        *rounds_table(plan, table),
    ]
    ordered = [table[i] for i in dict.fromkeys(i for rows in plan.values() for i in rows)]
    lines += errors_section(ordered, "###")
    return "\n".join(lines) + "\n"


def save_results(plan: Plan, table: Table, settings: Settings, env: list[str]) -> Path:
    """Every raw result of the run, to ``bench/results/http-*.json`` (``--from-json``)."""
    return write_results("http", run_data(table.values(), settings, env, plan=plan))


def load_results(path: Path) -> tuple[Plan, Table, Settings, list[str]]:
    data, rows, settings, env = load_run(path)
    return data["plan"], {m.row.impl: m for m in rows}, settings, env


def replay(path: Path) -> str:
    """Render the run saved at ``path`` (``--from-json``)."""
    return render(*load_results(path))
