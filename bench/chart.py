"""Draw docs/_static/benchmarks.png from the newest saved benchmark results.

    python bench/chart.py                      # the newest run of each suite
    python bench/chart.py --websocket bench/results/run-20261122-070004.json
    python bench/chart.py --output /tmp/benchmarks.png

One panel per suite that has results. A suite is an entry of ``SUITES``: a function that
finds its newest results file and one that draws its panel on a matplotlib ``Axes``; a
new suite (HTTP runner, Engine.IO) adds its two functions there. The WebSocket panel
shows the server's CPU time per echoed message in the 100 connections x 10 in flight
scenario (the median of its rounds; lower is better), the number the suite's goals are
about. Needs matplotlib (the ``bench`` dependency group); draws without a display (Agg).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from _common_report import RESULTS, load_table, median_of
from _harness import ROOT, Measurements, disturbed
from matplotlib.axes import Axes

OUTPUT = ROOT / "docs" / "_static" / "benchmarks.png"

OURS = "#1f6fb4"  # anywire
PEER = "#9aa5b1"  # the libraries we compare with
FLOOR = "#d9dee3"  # anyio's bare TCP echo: what any layer above anyio adds to


@dataclasses.dataclass(frozen=True)
class Suite:
    """How to find a suite's newest results and draw them."""

    title: str
    newest: Callable[[], Path | None]
    draw: Callable[[Axes, Path], None]


def newest(pattern: str) -> Path | None:
    """The newest ``bench/results/<pattern>`` file (names carry a UTC timestamp)."""
    paths = sorted(RESULTS.glob(pattern))
    return paths[-1] if paths else None


def color(label: str) -> str:
    if label.startswith("anywire"):
        return OURS
    return FLOOR if label.startswith("anyio-tcp-echo") else PEER


def bar_panel(ax: Axes, bars: list[tuple[str, float, bool]], xlabel: str, note: str) -> None:
    """Horizontal bars, top to bottom in the given order, each labelled with its value.

    ``bars`` holds (label, value, disturbed); a disturbed measurement gets a ``*``.
    """
    labels = [label for label, _, _ in bars]
    values = [value for _, value, _ in bars]
    ax.barh(labels, values, color=[color(label) for label in labels])
    ax.invert_yaxis()
    for y, (_, value, busy) in enumerate(bars):
        ax.text(value, y, f" {value:.1f}{' *' if busy else ''}", va="center", fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_xlim(0, max(values) * 1.2)
    ax.spines[["top", "right"]].set_visible(False)
    ax.text(0, -0.13, note, transform=ax.transAxes, fontsize=8, color="#555555", va="top")


def websocket_bars(table: list[Measurements]) -> list[tuple[str, float, bool]]:
    """Server CPU µs per echoed message at 100x10, per server (rows without it left out)."""
    bars = []
    for m in table:
        value = median_of(m, "flood", "cpu_us_per_op")
        if m.skipped or value is None:
            continue
        busy = any(disturbed(r) for r in m.results.get("flood", []) if "error" not in r)
        bars.append((m.row.label, value, busy))
    return bars


def draw_websocket(ax: Axes, path: Path) -> None:
    table, _, environment = load_table(path)
    date = next((line.split(";")[0].removeprefix("- Date: ") for line in environment), "")
    ax.set_title("WebSocket echo: server CPU per message (100 connections x 10 in flight)")
    bar_panel(
        ax,
        websocket_bars(table),
        "server CPU time per echoed message, µs (lower is better)",
        f"{path.name} ({date}), median of the rounds\n"
        "* other programs disturbed the measurement; 2-core VM, node load generator",
    )


SUITES: dict[str, Suite] = {
    "websocket": Suite("WebSocket servers", lambda: newest("run-*.json"), draw_websocket),
}


def draw(paths: dict[str, Path], output: Path) -> None:
    fig, axes = plt.subplots(
        len(paths), 1, figsize=(9, 4.2 * len(paths)), squeeze=False, layout="constrained"
    )
    for ax, (name, path) in zip(axes[:, 0], paths.items(), strict=True):
        SUITES[name].draw(ax, path)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110, metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, suite in SUITES.items():
        parser.add_argument(f"--{name}", type=Path, help=f"results of {suite.title}")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    paths = {}
    for name, suite in SUITES.items():
        path = getattr(args, name) or suite.newest()
        if path is not None:
            paths[name] = path
    if not paths:
        parser.error(f"no results in {RESULTS}: run a benchmark first")
    draw(paths, args.output)
    print(f"wrote {args.output} ({', '.join(f'{n}: {p.name}' for n, p in paths.items())})")


if __name__ == "__main__":
    main()
