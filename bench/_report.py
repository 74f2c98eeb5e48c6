"""The report of bench/run.py: tables, the issue's goals, the environment."""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from pathlib import Path

from _common_report import (
    cell,
    cpu_line,
    date_and_command,
    errors_section,
    load_table,
    marks,
    median_of,
    node_packages,
    node_version,
    ok,
    pinning,
    round_cells,
    round_ratios,
    rounds_line,
    run_data,
    verdict,
    versions,
    write_results,
)
from _harness import Measurements, Settings, scenario_args

# The issue's reference measurements (2-core Linux, Python 3.11, node 20), in µs per message.
ISSUE_US = {
    "websockets-asyncio": 13.9,
    "trio-websocket": 42.5,
    "anyio-tcp-echo-asyncio": 12.8,
    "anyio-tcp-echo-trio": 9.5,
}
ISSUE_IDLE_KIB = 14.0  # websockets' idle memory per connection, as the issue measured it


# -- numbers -----------------------------------------------------------------------


def _cell(m: Measurements, scenario: str, key: str, digits: int = 0) -> str:
    applies = scenario in scenario_args(m.row, _NO_SETTINGS) or scenario == "idle"
    if not applies and median_of(m, scenario, key) is None:
        return "n/a"
    return cell(m, scenario, key, digits)


_NO_SETTINGS = Settings(1, 1, 1, 1, 1, None, None)


def table_line(m: Measurements) -> str:
    if m.skipped:
        return f"| {m.row.label} | {m.skipped} | | | | | |"
    handshakes = f"{_cell(m, 'handshake-1', 'rate')} / {_cell(m, 'handshake-n', 'rate')}"
    if m.row.tcp:
        handshakes = "n/a"
    cells = [
        m.row.label,
        _cell(m, "rtt", "rate"),
        _cell(m, "flood", "rate"),
        _cell(m, "flood", "cpu_us_per_op", 1),
        _cell(m, "big", "rate", 0),  # one message is 1 MiB: messages/s = MiB/s
        handshakes,
        _cell(m, "idle", "kib_per_conn", 1),
    ]
    return "| " + " | ".join(cells) + " |"


def main_table(table: list[Measurements], settings: Settings) -> list[str]:
    conc = settings.handshake_concurrency
    return [
        "| server | round trips/s (1 conn) | msgs/s (100x10) | CPU µs/msg (100x10) "
        f"| MiB/s (1 MiB) | handshakes/s (1 / {conc} at a time) | idle KiB/conn |",
        "|---|--:|--:|--:|--:|--:|--:|",
        *(table_line(m) for m in table),
    ]


def rounds_table(table: list[Measurements]) -> list[str]:
    lines = [
        "| server | msgs/s per round | CPU µs/msg per round | spread of µs/msg "
        "| server CPU busy | node CPU busy | other CPUs busy (max) | probe slowdown (max) |",
        "|---|---|---|--:|--:|--:|--:|--:|",
    ]
    for m in table:
        if runs := ok(m.results.get("flood")):
            lines.append(f"| {m.row.label} | {round_cells(runs)}")
    return lines


def cost_table(table: list[Measurements], settings: Settings) -> list[str]:
    conc = settings.handshake_concurrency
    lines = [
        "| server | µs per round trip (1 conn) | µs per msg, 100x1 | µs per MiB echoed "
        f"| µs per handshake (1 / {conc} at a time) | RSS before → after idle conns (KiB) |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for m in table:
        if m.skipped:
            continue
        idle = ok(m.results.get("idle"))
        rss = f"{idle[0]['rss_before_kib']:,} → {idle[0]['rss_after_kib']:,}" if idle else "—"
        hs = "n/a"
        if not m.row.tcp:
            hs = f"{_cell(m, 'handshake-1', 'cpu_us_per_op')} / "
            hs += _cell(m, "handshake-n", "cpu_us_per_op")
        lines.append(
            f"| {m.row.label} | {_cell(m, 'rtt', 'cpu_us_per_op', 1)} "
            f"| {_cell(m, 'flood-100x1', 'cpu_us_per_op', 1)} "
            f"| {_cell(m, 'big', 'cpu_us_per_op')} | {hs} | {rss} |"
        )
    return lines


# -- the issue's goals -----------------------------------------------------------------


def _by_label(table: list[Measurements]) -> dict[str, Measurements]:
    return {m.row.label: m for m in table}


def goal_lines(table: list[Measurements]) -> list[str]:
    rows = _by_label(table)

    def get(label: str, scenario: str, key: str) -> float | None:
        return median_of(rows[label], scenario, key) if label in rows else None

    def per_round(label: str) -> list[float]:
        runs = rows[label].results.get("flood", []) if label in rows else []
        return [r["cpu_us_per_op"] for r in runs if r.get("cpu_us_per_op") is not None]

    lines = []
    lines += _goal_cpu(get, per_round)
    lines += _goal_idle(get)

    def shaky(label: str, scenario: str) -> bool:
        return label in rows and bool(marks(ok(rows[label].results.get(scenario))))

    lines += _goal_handshakes(get, shaky)
    lines += _goal_floor(get)
    return lines


Getter = Callable[[str, str, str], float | None]


#: The CPU goals: backend, rival, the goal in words, anywire's µs at most the rival's
#: divided by this, the bound on the ratio in words (none when it is 1).
CPU_GOALS = [
    ("asyncio", "websockets-asyncio", "at or below websockets", 1, ""),
    ("trio", "trio-websocket", "at most a third of trio-websocket", 3, "0.33"),
]


def _goal_cpu(get: Getter, per_round: Callable[[str], list[float]]) -> list[str]:
    lines = []
    for backend, rival, goal, divisor, bound in CPU_GOALS:
        ours_label = f"anywire-{backend}"
        ours = get(ours_label, "flood", "cpu_us_per_op")
        theirs = get(rival, "flood", "cpu_us_per_op")
        if ours is None or theirs is None:
            continue
        rounds = round_ratios(per_round(ours_label), per_round(rival))
        bound_text = f", the goal is {bound} or less" if bound else ""
        lines.append(
            f"- CPU per message on {backend} {goal}: anywire {ours:.1f} µs, "
            f"{rival.removesuffix('-asyncio')} {theirs:.1f} µs (issue: {ISSUE_US[rival]} µs), "
            f"ratio {ours / theirs:.2f}{rounds}{bound_text}: {verdict(ours <= theirs / divisor)}."
        )
    return lines


def _goal_idle(get: Getter) -> list[str]:
    theirs = get("websockets-asyncio", "idle", "kib_per_conn")
    bound = ISSUE_IDLE_KIB if theirs is None else max(theirs, ISSUE_IDLE_KIB)
    lines = []
    for label in ("anywire-asyncio", "anywire-trio"):
        ours = get(label, "idle", "kib_per_conn")
        if ours is None:
            continue
        measured = "not measured" if theirs is None else f"{theirs:.1f} KiB measured here"
        lines.append(
            f"- Idle memory per connection ({label}) at or below websockets': {ours:.1f} KiB; "
            f"websockets {measured}, {ISSUE_IDLE_KIB:.0f} KiB in the issue: "
            f"{verdict(ours <= bound)}."
        )
    return lines


def _goal_handshakes(get: Getter, shaky: Callable[[str, str], bool]) -> list[str]:
    lines = []
    for ours_label, theirs_label in (
        ("anywire-asyncio", "websockets-asyncio"),
        ("anywire-trio", "websockets-trio"),
    ):
        for scenario, how in (("handshake-1", "one at a time"), ("handshake-n", "concurrent")):
            ours, theirs = get(ours_label, scenario, "rate"), get(theirs_label, scenario, "rate")
            if ours is None or theirs is None:
                continue
            caveat = ""
            if shaky(ours_label, scenario) or shaky(theirs_label, scenario):
                caveat = " (from a number marked `*` or `‡`: see the notes; measure again)"
            lines.append(
                f"- Handshakes/s ({how}) at or above websockets: {ours_label} {ours:,.0f}, "
                f"{theirs_label} {theirs:,.0f}: {verdict(ours >= theirs)}{caveat}."
            )
    return lines


def _goal_floor(get: Getter) -> list[str]:
    lines = []
    for backend in ("asyncio", "trio"):
        ours = get(f"anywire-{backend}", "flood", "cpu_us_per_op")
        floor = get(f"anyio-tcp-echo-{backend}", "flood", "cpu_us_per_op")
        single = get(f"anyio-tcp-echo-{backend}", "flood-100x1", "cpu_us_per_op")
        if ours is None or floor is None:
            continue
        issue = ISSUE_US[f"anyio-tcp-echo-{backend}"]
        uncoalesced = "" if single is None else f", {single:.1f} µs with one in flight"
        lines.append(
            f"- Above anyio on {backend}: the bare TCP echo costs {floor:.1f} µs per message "
            f"at 100x10 (the kernel coalesces a connection's messages){uncoalesced} "
            f"(issue: {issue} µs); anywire {ours:.1f} µs: the layers above anyio add "
            f"{ours - floor:.1f} µs ({ours / floor:.1f}x the 100x10 floor)."
        )
    return lines


# -- the environment -----------------------------------------------------------------

PACKAGES = ["anywire", "anyio", "trio", "wsproto", "h11", "websockets", "trio-websocket"]


def environment(settings: Settings, argv: Sequence[str]) -> list[str]:
    npm = node_packages(["ws", "bufferutil"])
    return [
        *date_and_command("bench/run.py", argv),
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"node {node_version()}; {versions(PACKAGES)}; npm {npm}",
        cpu_line(pinning(settings)),
        f"{rounds_line(settings)}; "
        f"idle memory with {settings.idle_conns:,} connections on a fresh server",
    ]


# -- the report ----------------------------------------------------------------------


def render(table: list[Measurements], settings: Settings, env: list[str]) -> str:
    """The generated part of docs/benchmarks.md; ``env`` from :func:`environment`."""
    main = [m for m in table if not m.row.compression]
    deflate = [m for m in table if m.row.compression]
    lines = [
        "## Results",
        "",
        *env,
        "",
        *main_table(main, settings),
        "",
        "## The issue's goals",
        "",
        "Goal: server CPU per echoed message (100 connections x 10 in flight) at or below "
        "websockets on asyncio, at most a third of trio-websocket on trio; idle memory per "
        "connection at or below websockets' 14 KiB; handshakes per second at or above "
        "websockets.",
        "",
        *(goal_lines(table) or ["- No goal could be checked in this run."]),
    ]
    if deflate:
        lines += ["", "## With permessage-deflate (reference)", "", *main_table(deflate, settings)]
    lines += ["", "## 100x10, round by round", "", *rounds_table(table)]
    lines += ["", "## Server CPU per operation", "", *cost_table(table, settings)]
    lines += errors_section(table)
    return "\n".join(lines) + "\n"


def save_results(table: list[Measurements], settings: Settings, env: list[str]) -> Path:
    """Every raw result of the run, to ``bench/results/run-*.json`` (``--from-json``)."""
    return write_results("run", run_data(table, settings, env, compression=True))


def replay(path: Path) -> str:
    """Render the run saved at ``path`` (``--from-json``)."""
    return render(*load_table(path))
