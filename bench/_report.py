"""The report of bench/run.py: tables, the issue's goals, the environment."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from _doc import write_section
from _harness import (
    BENCH,
    OTHER_LIMIT,
    ROOT,
    SLOWDOWN_LIMIT,
    Measurements,
    Result,
    Row,
    Settings,
    disturbed,
    exported,
    git,
    scenario_args,
)

# The issue's reference measurements (2-core Linux, Python 3.11, node 20), in µs per message.
ISSUE_US = {
    "websockets-asyncio": 13.9,
    "trio-websocket": 42.5,
    "anyio-tcp-echo-asyncio": 12.8,
    "anyio-tcp-echo-trio": 9.5,
}
ISSUE_IDLE_KIB = 14.0  # websockets' idle memory per connection, as the issue measured it


# -- numbers -----------------------------------------------------------------------


def _ok(results: list[Result] | None) -> list[Result]:
    return [r for r in results or [] if "error" not in r]


def median_of(m: Measurements, scenario: str, key: str) -> float | None:
    values = [r[key] for r in _ok(m.results.get(scenario)) if r.get(key) is not None]
    return statistics.median(values) if values else None


def _error(m: Measurements, scenario: str) -> str | None:
    errors = [r["error"] for r in m.results.get(scenario, []) if "error" in r]
    return errors[0] if errors else None


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _cell(m: Measurements, scenario: str, key: str, digits: int = 0, scale: float = 1) -> str:
    value = median_of(m, scenario, key)
    if value is None:
        if scenario not in scenario_args(m.row, _NO_SETTINGS) and scenario != "idle":
            return "n/a"
        return "error" if _error(m, scenario) else "—"
    return _fmt(value * scale, digits) + _marks(_ok(m.results.get(scenario)))


def _marks(results: list[Result]) -> str:
    """``*``: the measurement was disturbed (other programs, a slow host); ``‡``: some
    echoes failed."""
    busy = any(disturbed(r) for r in results)
    failed = any(r.get("failures") for r in results)
    return (" *" if busy else "") + (" ‡" if failed else "")


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
        runs = _ok(m.results.get("flood"))
        if not runs:
            continue
        us = [r["cpu_us_per_op"] for r in runs]
        spread = (max(us) - min(us)) / statistics.median(us)
        lines.append(
            f"| {m.row.label} | {', '.join(_fmt(r['rate']) for r in runs)} "
            f"| {', '.join(_fmt(u, 1) for u in us)} | {spread:.0%} "
            f"| {median_of(m, 'flood', 'server_cpu_util'):.0%} "
            f"| {median_of(m, 'flood', 'client_cpu_util'):.0%} "
            f"| {max(r.get('other_cpu', 0) for r in runs):.2f} "
            f"| {max(r.get('slowdown', 1.0) for r in runs):.2f}x |"
        )
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
        idle = _ok(m.results.get("idle"))
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


def errors_section(table: list[Measurements]) -> list[str]:
    lines = []
    for m in table:
        for scenario, results in m.results.items():
            lines += [f"- {m.row.label}, {scenario}: {_problem(r)}" for r in results if _problem(r)]
    if not lines:
        return []
    return ["", "## Notes on this run", "", *lines]


def _problem(r: Result) -> str:
    if "error" in r:
        return f"error: {r['error']}"
    notes = []
    if r.get("failures"):
        notes.append(
            f"‡ {r['failures']} of the connections or echoes failed "
            f"(first: {r['first_failure']}); the numbers count the rest"
        )
    if r.get("other_cpu", 0) > OTHER_LIMIT:
        notes.append(f"* other programs kept {r['other_cpu']:.2f} CPUs busy meanwhile")
    if r.get("slowdown", 1.0) > SLOWDOWN_LIMIT:
        notes.append(
            f"* the server's CPU ran slow: a probe loop took {r['slowdown']:.2f}x "
            "its best time of the run"
        )
    return "; ".join(notes)


# -- the issue's goals -----------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


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
        return label in rows and bool(_marks(_ok(rows[label].results.get(scenario))))

    lines += _goal_handshakes(get, shaky)
    lines += _goal_floor(get)
    return lines


Getter = Callable[[str, str, str], float | None]


def _ratios(per_round: Callable[[str], list[float]], ours: str, theirs: str) -> str:
    """Ratios of one round's numbers (measured a minute apart at most): the spread."""
    pairs = zip(per_round(ours), per_round(theirs), strict=False)
    ratios = [f"{a / b:.2f}" for a, b in pairs if b]
    return f" (per round: {', '.join(ratios)})" if len(ratios) > 1 else ""


def _goal_cpu(get: Getter, per_round: Callable[[str], list[float]]) -> list[str]:
    lines = []
    ours, theirs = (
        get("anywire-asyncio", "flood", "cpu_us_per_op"),
        get("websockets-asyncio", "flood", "cpu_us_per_op"),
    )
    if ours is not None and theirs is not None:
        spread = _ratios(per_round, "anywire-asyncio", "websockets-asyncio")
        lines.append(
            f"- CPU per message on asyncio at or below websockets: anywire {ours:.1f} µs, "
            f"websockets {theirs:.1f} µs (issue: {ISSUE_US['websockets-asyncio']} µs), "
            f"ratio {ours / theirs:.2f}{spread}: {_verdict(ours <= theirs)}."
        )
    ours, theirs = (
        get("anywire-trio", "flood", "cpu_us_per_op"),
        get("trio-websocket", "flood", "cpu_us_per_op"),
    )
    if ours is not None and theirs is not None:
        spread = _ratios(per_round, "anywire-trio", "trio-websocket")
        lines.append(
            f"- CPU per message on trio at most a third of trio-websocket: anywire {ours:.1f} µs, "
            f"trio-websocket {theirs:.1f} µs (issue: {ISSUE_US['trio-websocket']} µs), "
            f"ratio {ours / theirs:.2f}{spread}, the goal is 0.33 or less: "
            f"{_verdict(ours <= theirs / 3)}."
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
            f"{_verdict(ours <= bound)}."
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
                f"{theirs_label} {theirs:,.0f}: {_verdict(ours >= theirs)}{caveat}."
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


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _node_package(name: str) -> str:
    try:
        meta = json.loads((BENCH / "node_modules" / name / "package.json").read_text())
    except OSError:
        return "not installed"
    return str(meta["version"])


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def anywire_source() -> str:
    """Which anywire the servers import: this checkout (at which commit) or elsewhere."""
    if exported:
        return f"anywire at git {exported[0]} (exported with git archive, not the working tree)"
    spec = importlib.util.find_spec("anywire")
    origin = Path(spec.origin).resolve().parent if spec and spec.origin else None
    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    if origin is None:
        return "anywire not importable"
    if origin != (ROOT / "src" / "anywire").resolve():
        return f"anywire imported from {origin} (this checkout is at git {rev})"
    dirty = " with uncommitted changes in src/" if git("status", "--porcelain", "src") else ""
    return f"anywire from this checkout, git {rev}{dirty}"


def environment(settings: Settings, argv: Sequence[str]) -> list[str]:
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    versions = ", ".join(f"{p} {_version(p)}" for p in PACKAGES)
    pinning = "not pinned"
    if settings.server_cpu is not None:
        pinning = (
            f"server process on CPU {settings.server_cpu}, node load generator on CPU "
            f"{settings.client_cpu} (sched_setaffinity)"
        )
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"- Date: {now}; {anywire_source()}",
        f"- Command: `python bench/run.py{' ' if argv else ''}{shlex.join(argv)}`",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"node {node}; {versions}; npm ws {_node_package('ws')}, "
        f"bufferutil {_node_package('bufferutil')}",
        f"- CPU: {_cpu_model()}, {os.cpu_count()} cores; Linux {platform.release()}; {pinning}",
        f"- Each timed scenario: {settings.warmup:g} s warm-up, then {settings.duration:g} s "
        f"measured; 100x10 in {settings.rounds} rounds, each in its own server process, "
        "interleaved across servers (median shown); "
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


RESULTS = BENCH / "results"


def save_results(table: list[Measurements], settings: Settings, env: list[str]) -> Path:
    """Every raw result of the run, to ``bench/results/`` (``--from-json`` renders it)."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"run-{stamp}.json"
    rows = [
        {"impl": m.row.impl, "compression": m.row.compression, "skipped": m.skipped,
         "results": m.results}
        for m in table
    ]  # fmt: skip
    data = {"settings": dataclasses.asdict(settings), "environment": env, "rows": rows}
    path.write_text(json.dumps(data, indent=1))
    return path


def load_results(path: Path) -> tuple[list[Measurements], Settings, list[str]]:
    data = json.loads(path.read_text())
    table = [
        Measurements(Row(r["impl"], r["compression"]), r["results"], r["skipped"])
        for r in data["rows"]
    ]
    return table, Settings(**data["settings"]), data["environment"]


def write_doc(generated: str) -> None:
    write_section("websocket", "bench/run.py", generated)
