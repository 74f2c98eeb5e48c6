"""The report of bench/eio_server_run.py: tables, the issue's goals, the environment."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path

from _common_report import (
    cell,
    cpu_line,
    date_and_command,
    errors_section,
    load_table,
    median_of,
    node_packages,
    node_version,
    ok,
    percent,
    pinning,
    round_cells,
    round_ratios,
    rounds_line,
    run_data,
    verdict,
    versions,
    write_results,
)
from _harness import Measurements, Settings

#: The issue's reference numbers (2-core Linux, Python 3.11, node 20): server CPU µs
#: per echoed message, 100 clients x 10 in flight.
ISSUE_US = {
    ("python-engineio-uvicorn", "ws"): 66.0,
    ("python-engineio-uvicorn", "polling"): 199.0,
    ("node-engine.io", "ws"): 12.0,
    ("node-engine.io", "polling"): 36.0,
}
#: The goal: anywire's CPU per message at most this share of python-engineio's.
GOAL_SHARE = {"ws": 1 / 3, "polling": 1 / 2}
RIVAL = "python-engineio-uvicorn"
TRANSPORTS = {"ws": "websocket", "polling": "polling"}
PACKAGES = ["anywire", "anyio", "trio", "python-engineio", "uvicorn", "httptools", "websockets"]


# -- numbers -----------------------------------------------------------------------------


def transport_table(table: list[Measurements], short: str, conc: int) -> list[str]:
    lines = [
        "| server | round trips/s (1 client) | msgs/s (100x10) | server CPU µs/msg (100x10) "
        f"| handshakes/s (1 / {conc} at a time) | node CPU busy (100x10) |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for m in table:
        if m.skipped:
            lines.append(f"| {m.row.label} | {m.skipped} | | | | |")
            continue
        lines.append(
            f"| {m.row.label} | {cell(m, f'rtt-{short}', 'rate')} "
            f"| {cell(m, f'flood-{short}', 'rate')} "
            f"| {cell(m, f'flood-{short}', 'cpu_us_per_op', 1)} "
            f"| {cell(m, f'handshake1-{short}', 'rate')} / "
            f"{cell(m, f'handshakeN-{short}', 'rate')} "
            f"| {percent(median_of(m, f'flood-{short}', 'client_cpu_util'))} |"
        )
    return lines


def cost_table(table: list[Measurements], conc: int) -> list[str]:
    lines = [
        "| server | transport | µs per round trip (1 client) "
        f"| µs per handshake (1 / {conc} at a time) |",
        "|---|---|--:|--:|",
    ]
    for m in table:
        if m.skipped:
            continue
        for short, transport in TRANSPORTS.items():
            lines.append(
                f"| {m.row.label} | {transport} | {cell(m, f'rtt-{short}', 'cpu_us_per_op', 1)} "
                f"| {cell(m, f'handshake1-{short}', 'cpu_us_per_op')} / "
                f"{cell(m, f'handshakeN-{short}', 'cpu_us_per_op')} |"
            )
    return lines


def rounds_table(table: list[Measurements]) -> list[str]:
    lines = [
        "| server | transport | msgs/s per round | CPU µs/msg per round | spread "
        "| server CPU busy | node CPU busy | other CPUs busy (max) | probe slowdown (max) |",
        "|---|---|---|---|--:|--:|--:|--:|--:|",
    ]
    for m in table:
        for short, transport in TRANSPORTS.items():
            runs = [r for r in ok(m.results.get(f"flood-{short}")) if r.get("cpu_us_per_op")]
            if runs:
                lines.append(f"| {m.row.label} | {transport} | {round_cells(runs)}")
    return lines


# -- the issue's goals -------------------------------------------------------------------


def _per_round(m: Measurements, scenario: str) -> list[float | None]:
    return [r.get("cpu_us_per_op") for r in m.results.get(scenario, [])]


def goal_lines(table: list[Measurements]) -> list[str]:
    rows = {m.row.impl: m for m in table if not m.skipped}
    rival = rows.get(RIVAL)
    lines = []
    for short, transport in TRANSPORTS.items():
        scenario = f"flood-{short}"
        theirs = median_of(rival, scenario, "cpu_us_per_op") if rival else None
        for impl in ("anywire-asyncio", "anywire-trio"):
            ours = median_of(rows[impl], scenario, "cpu_us_per_op") if impl in rows else None
            if ours is None or theirs is None or rival is None:
                continue
            rounds = round_ratios(_per_round(rows[impl], scenario), _per_round(rival, scenario))
            share = GOAL_SHARE[short]
            lines.append(
                f"- {transport}, {impl}: {ours:.1f} µs per message, python-engineio "
                f"{theirs:.1f} µs (issue: {ISSUE_US[(RIVAL, short)]:.0f} µs): ratio "
                f"{ours / theirs:.2f}{rounds}, the goal is {share:.2f} or less: "
                f"{verdict(ours <= theirs * share)}."
            )
    return lines + _node_lines(rows)


def _node_lines(rows: dict[str, Measurements]) -> list[str]:
    node, rival = rows.get("node-engine.io"), rows.get(RIVAL)
    if node is None:
        return []
    parts = []
    for short, transport in TRANSPORTS.items():
        ours = median_of(node, f"flood-{short}", "cpu_us_per_op")
        theirs = median_of(rival, f"flood-{short}", "cpu_us_per_op") if rival else None
        if ours is None:
            continue
        ratio = f", {ours / theirs:.2f} of python-engineio" if theirs else ""
        parts.append(
            f"{transport} {ours:.1f} µs (issue: {ISSUE_US[('node-engine.io', short)]:.0f} µs"
            f"{ratio})"
        )
    return [f"- For scale, node engine.io: {'; '.join(parts)}."] if parts else []


# -- the environment and the report --------------------------------------------------


def environment(settings: Settings, argv: Sequence[str]) -> list[str]:
    npm = node_packages(["engine.io", "engine.io-client", "ws", "bufferutil"])
    return [
        *date_and_command("bench/eio_server_run.py", argv),
        f"- Python {platform.python_version()}, node {node_version()}; {versions(PACKAGES)}; "
        f"npm {npm}",
        cpu_line(pinning(settings)),
        rounds_line(settings),
    ]


def render(table: list[Measurements], settings: Settings, env: list[str]) -> str:
    """The generated section "engineio-server" of docs/benchmarks.md."""
    conc = settings.handshake_concurrency
    lines = [
        "## Engine.IO servers",
        "",
        *env,
        "",
        "Load: the npm `engine.io-client`, forced onto one transport; 32-character text "
        "messages echoed by the server.",
        "",
        "### WebSocket transport",
        "",
        *transport_table(table, "ws", conc),
        "",
        "### Polling transport",
        "",
        *transport_table(table, "polling", conc),
        "",
        "### The issue's goals",
        "",
        "Goal: server CPU per echoed message (100 clients x 10 in flight) at most a third of "
        "python-engineio's (ASGI on uvicorn) over WebSocket, at most half over polling, on "
        "asyncio and on trio; compared within this run.",
        "",
        *(goal_lines(table) or ["- No goal could be checked in this run."]),
        "",
        "### 100x10, round by round",
        "",
        *rounds_table(table),
        "",
        "### Server CPU per operation",
        "",
        *cost_table(table, conc),
    ]
    return "\n".join(lines + errors_section(table, "###")) + "\n"


def save_results(table: list[Measurements], settings: Settings, env: list[str]) -> Path:
    """Every raw result, to ``bench/results/eio-server-*.json`` (``--from-json``)."""
    return write_results("eio-server", run_data(table, settings, env))


def replay(path: Path) -> str:
    """Render the run saved at ``path`` (``--from-json``)."""
    return render(*load_table(path))
