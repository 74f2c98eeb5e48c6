"""What the suites' reports share: numbers and their marks, the notes on a run, the
environment lines, and the raw results in ``bench/results/``."""

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
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

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
)

RESULTS = BENCH / "results"

# -- numbers -----------------------------------------------------------------------------


def ok(results: list[Result] | None) -> list[Result]:
    """The results that are not errors."""
    return [r for r in results or [] if "error" not in r]


def median_of(m: Measurements | None, scenario: str, key: str) -> float | None:
    """The median of ``key`` over ``m``'s good results of ``scenario``."""
    return None if m is None else _median(ok(m.results.get(scenario)), key)


def has_error(m: Measurements, scenario: str) -> bool:
    return any("error" in r for r in m.results.get(scenario, []))


def fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def marks(results: list[Result]) -> str:
    """``*``: the measurement was disturbed (other programs, a slow host); ``‡``: some
    connections, echoes or requests failed."""
    busy = any(disturbed(r) for r in results)
    failed = any(r.get("failures") for r in results)
    return (" *" if busy else "") + (" ‡" if failed else "")


def cell(m: Measurements, scenario: str, key: str, digits: int = 0) -> str:
    """A table cell: the median with its marks, else "error" or "—"."""
    value = median_of(m, scenario, key)
    if value is None:
        return "error" if has_error(m, scenario) else "—"
    return fmt(value, digits) + marks(ok(m.results.get(scenario)))


def spread(values: Sequence[float]) -> float:
    """How far apart the rounds are: (largest - smallest) / median."""
    return (max(values) - min(values)) / statistics.median(values)


def round_cells(runs: Sequence[Result], *, busy: bool = True, unit: str = "") -> str:
    """The cells of a round-by-round row after its labels, each cell closed by ``|``: the
    rate of each round (followed by ``unit``), the CPU µs per operation of each round, their
    spread, with ``busy`` the median share of a CPU the server and the load generator kept
    busy, then the worst disturbance (other CPUs busy, probe slowdown)."""
    us = [r["cpu_us_per_op"] for r in runs if r.get("cpu_us_per_op")]
    rates = ", ".join(fmt(r["rate"]) for r in runs) + (f" {unit}" if unit else "")
    cells = [rates, ", ".join(fmt(u, 1) for u in us), f"{spread(us):.0%}" if us else "—"]
    if busy:
        cells += [
            percent(_median(runs, "server_cpu_util")),
            percent(_median(runs, "client_cpu_util")),
        ]
    cells += [
        f"{max(r.get('other_cpu', 0.0) for r in runs):.2f}",
        f"{max(r.get('slowdown', 1.0) for r in runs):.2f}x",
    ]
    return " | ".join(cells) + " |"


def _median(runs: Iterable[Result], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def round_ratios(ours: Iterable[float | None], theirs: Iterable[float | None]) -> str:
    """`` (per round: a, b, ...)``: the ratio within each round (the two measured a minute
    apart at most), when there are several; else nothing."""
    pairs = zip(ours, theirs, strict=False)
    ratios = [f"{a / b:.2f}" for a, b in pairs if a is not None and b]
    return f" (per round: {', '.join(ratios)})" if len(ratios) > 1 else ""


def verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


# -- notes on the run -------------------------------------------------------------------


def errors_section(table: Iterable[Measurements], heading: str = "##") -> list[str]:
    """Every error, disturbed measurement and failure of the run, one line each."""
    lines = []
    for m in table:
        for scenario, results in m.results.items():
            lines += [f"- {m.row.label}, {scenario}: {_problem(r)}" for r in results if _problem(r)]
    if not lines:
        return []
    return ["", f"{heading} Notes on this run", "", *lines]


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


# -- the environment ---------------------------------------------------------------------


def version(dist: str) -> str:
    """The installed version of the Python distribution ``dist``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions(dists: Iterable[str]) -> str:
    return ", ".join(f"{d} {version(d)}" for d in dists)


def node_package(name: str) -> str:
    """The version of the npm package ``name`` in bench/node_modules."""
    try:
        meta = json.loads((BENCH / "node_modules" / name / "package.json").read_text())
    except OSError:
        return "not installed"
    return str(meta["version"])


def node_packages(names: Iterable[str]) -> str:
    return ", ".join(f"{n} {node_package(n)}" for n in names)


def node_version() -> str:
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


def cpu_model() -> str:
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


def date_and_command(script: str, argv: Sequence[str]) -> list[str]:
    """The first two lines of every environment: when, which anywire, which command."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"- Date: {now}; {anywire_source()}",
        f"- Command: `python {script}{' ' if argv else ''}{shlex.join(argv)}`",
    ]


def pinning(settings: Settings, load: str = "node load generator") -> str:
    if settings.server_cpu is None:
        return "not pinned"
    return (
        f"server process on CPU {settings.server_cpu}, {load} on CPU "
        f"{settings.client_cpu} (sched_setaffinity)"
    )


def cpu_line(pinned: str) -> str:
    cores = f"{os.cpu_count()} cores; Linux {platform.release()}"
    return f"- CPU: {cpu_model()}, {cores}; {pinned}"


def rounds_line(settings: Settings) -> str:
    """How the timed scenarios ran, for the suites with the 100x10 rounds."""
    return (
        f"- Each timed scenario: {settings.warmup:g} s warm-up, then {settings.duration:g} s "
        f"measured; 100x10 in {settings.rounds} rounds, each in its own server process, "
        "interleaved across servers (median shown)"
    )


# -- raw results ---------------------------------------------------------------------------


def write_results(prefix: str, data: dict[str, Any]) -> Path:
    """``data`` to ``bench/results/<prefix>-<UTC time>.json``, and say so."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{prefix}-{stamp}.json"
    path.write_text(json.dumps(data, indent=1))
    print(f"raw results: {path.relative_to(ROOT)}")
    return path


def run_data(
    table: Iterable[Measurements],
    settings: Settings,
    env: list[str],
    *,
    compression: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A run of a suite as JSON data: settings, environment, ``extra``, then the rows
    (with ``compression``: each row's flag)."""
    rows = [
        {
            "impl": m.row.impl,
            **({"compression": m.row.compression} if compression else {}),
            "skipped": m.skipped,
            "results": m.results,
        }
        for m in table
    ]
    return {"settings": dataclasses.asdict(settings), "environment": env, **extra, "rows": rows}


def load_run(path: Path) -> tuple[dict[str, Any], list[Measurements], Settings, list[str]]:
    """A run saved with :func:`run_data`: the data, the rows, the settings, the environment."""
    data = json.loads(path.read_text())
    table = [
        Measurements(Row(r["impl"], r.get("compression", False)), r["results"], r["skipped"])
        for r in data["rows"]
    ]
    return data, table, Settings(**data["settings"]), data["environment"]


def load_table(path: Path) -> tuple[list[Measurements], Settings, list[str]]:
    """A run saved with :func:`run_data`, for a suite that saves no ``extra``: the rows,
    the settings, the environment."""
    _data, table, settings, env = load_run(path)
    return table, settings, env
