"""Profiling for bench/run.py --profile: py-spy from outside, cProfile inside."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from _harness import (
    BENCH,
    LOAD_SCRIPT,
    ROOT,
    Row,
    Settings,
    children,
    clk_tck,
    pin_to,
    read_line,
    scenario_args,
    server_process,
    target_args,
)

PROFILES = BENCH / "profiles"

# -- profiling -------------------------------------------------------------------------


def add_profile_args(parser: argparse.ArgumentParser) -> None:
    """``--profile SERVER`` (repeatable), ``--profile-rate`` and ``--top``."""
    parser.add_argument("--profile", action="append", metavar="SERVER", help="profile SERVER")
    parser.add_argument("--profile-rate", type=int, default=250, help="py-spy samples/s")
    parser.add_argument("--top", type=int, default=15, help="functions in the profile summary")


def profile(impl: str, settings: Settings, rate: int, top: int) -> None:
    """Profile ``impl`` in the 100 x 10 scenario twice: py-spy, then cProfile.

    py-spy samples from outside (own time, little overhead); cProfile runs inside a
    second, fresh server and counts every call (calls per echoed message).
    """
    PROFILES.mkdir(exist_ok=True)
    parts = [py_spy_profile(impl, settings, rate, top), cprofile_profile(impl, settings, top)]
    write_summary(f"{impl}-100x10", parts)


def _profile_window(seconds: int) -> list[str]:
    return ["--warmup", "1", "--duration", str(seconds)]


@contextlib.contextmanager
def _loaded_server(
    impl: str, settings: Settings, seconds: int, extra: Sequence[str] = ()
) -> Iterator[tuple[subprocess.Popen[str], subprocess.Popen[str]]]:
    """A fresh server under the 100 x 10 load for about ``seconds``.

    Yields the server's and the load generator's processes; the load generator has
    finished (its JSON result waits on its stdout) when the block ends.
    """
    row = Row(impl)
    with server_process(row, settings, extra) as (pid, port):
        args = [*target_args(row, pid, port), *scenario_args(row, settings)["flood"]]
        load = start_load("flood", [*args, *_profile_window(seconds)], settings)
        time.sleep(1.5)  # connections open, past the load generator's warm-up
        yield server_proc(pid), load
        finish_load(load)


def py_spy_profile(impl: str, settings: Settings, rate: int, top: int) -> str:
    py_spy = py_spy_binary()
    seconds = max(1, round(settings.duration))
    with _loaded_server(impl, settings, 2 * (seconds + 2) + 1) as (server, _):
        raw = record_py_spy(py_spy, server.pid, seconds, rate, f"{impl}-100x10", settings)
    return summarize_profile(raw, impl, top)


def cprofile_profile(impl: str, settings: Settings, top: int) -> str:
    seconds = max(1, round(settings.duration))
    path = PROFILES / f"{impl}-100x10.pstats"
    path.unlink(missing_ok=True)
    with _loaded_server(impl, settings, seconds + 3, ["--cprofile", str(path)]) as (server, load):
        profiled_seconds = profiled(server, lambda: timed_sleep(seconds))
    return summarize_cprofile(path, impl, top, estimate=load_rate(load) * profiled_seconds)


# -- the pieces, shared with http_run.py --profile ------------------------------------


def start_load(scenario: str, args: Sequence[str], settings: Settings) -> subprocess.Popen[str]:
    """Start ``ws_load.mjs scenario args`` on the load generator's CPU."""
    cmd = ["node", str(LOAD_SCRIPT), scenario, *args, "--clk-tck", str(clk_tck())]
    pin = pin_to(settings.client_cpu)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=pin)
    children.add(proc)
    return proc


def finish_load(load: subprocess.Popen[str]) -> None:
    """Wait for a load generator started in the background to end."""
    load.wait(timeout=120)
    children.discard(load)


def load_rate(load: subprocess.Popen[str]) -> float:
    """The rate a finished ``ws_load.mjs`` reported."""
    assert load.stdout is not None
    return float(json.loads(load.stdout.read().strip().splitlines()[-1])["rate"])


def server_proc(pid: int) -> subprocess.Popen[str]:
    """The server process ``pid`` (one of :data:`_harness.children`)."""
    return next(p for p in children if p.pid == pid)


def profiled(proc: subprocess.Popen[str], work: Callable[[], float]) -> float:
    """``work()`` with cProfile on in the server ``proc``; its result."""
    proc.send_signal(signal.SIGUSR1)
    value = work()
    proc.send_signal(signal.SIGUSR2)
    read_line(proc, "PROFILE WRITTEN")
    return value


def timed_sleep(seconds: float) -> float:
    """Sleep ``seconds``; the seconds it took."""
    start = time.perf_counter()
    time.sleep(seconds)
    return time.perf_counter() - start


def py_spy_binary() -> str:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return py_spy


def record_py_spy(
    py_spy: str, pid: int, seconds: int, rate: int, stem: str, settings: Settings
) -> Path:
    """py-spy's raw stacks (``bench/profiles/STEM.txt``, returned), then a flame graph
    (``STEM.svg``), each over ``seconds``."""
    raw = PROFILES / f"{stem}.txt"
    for fmt, path in (("raw", raw), ("flamegraph", PROFILES / f"{stem}.svg")):
        cmd = [py_spy, "record", "--pid", str(pid), "--duration", str(seconds)]
        cmd += ["--rate", str(rate), "--function", "--nonblocking"]
        cmd += ["--format", fmt, "--output", str(path)]
        # py-spy shares the load generator's core: the server keeps its own core to itself.
        pin = pin_to(settings.client_cpu)
        subprocess.run(cmd, check=True, preexec_fn=pin, capture_output=True)
    return raw


def write_summary(stem: str, parts: list[str]) -> None:
    """Print the summaries ``parts`` and write them to ``bench/profiles/STEM-top.txt``."""
    summary = PROFILES / f"{stem}-top.txt"
    summary.write_text("\n".join(parts))
    print("\n".join(parts))
    print(f"wrote {summary.relative_to(ROOT)} and the profiles beside it")


# -- the summaries -------------------------------------------------------------------


def _parse_raw(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) stacks: ``frame;frame;... count``, root first."""
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def _function(frame: str) -> str:
    """``name (path/to/file.py:12)`` -> ``name (file.py)`` with the package kept."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({_short_path(file)})"


def _short_path(file: str) -> str:
    for anchor in ("site-packages/", "/src/", "/lib/python3"):
        if anchor in file:
            tail = file.split(anchor, 1)[1]
            return tail.split("/", 1)[1] if anchor == "/lib/python3" else tail
    return file


def _package(function: str) -> str:
    file = function.rsplit(" (", 1)[-1].rstrip(")")
    parts = file.split("/")
    if parts[0] == "anywire":
        return "/".join(parts[:2]) if len(parts) > 2 else parts[0]
    return parts[0] if len(parts) > 1 else f"stdlib ({parts[0]})"


def summarize_profile(path: Path, impl: str, top: int) -> str:
    """Own time, inclusive time and own time by package from py-spy's raw output.

    py-spy runs with ``--nonblocking``: its default (pausing the process for each
    sample) was measured to pile samples on functions that make a quick system call
    (20 % on ``asyncio.current_task``'s ``getpid()``, which perf puts at 1 %) and to
    count an idle thread-pool thread as busy. Non-blocking, some stacks come out
    truncated: own time is reliable, inclusive time only a lower bound.
    """
    stacks = [(s, n) for s, n in _parse_raw(path) if s]
    total = sum(n for _, n in stacks) or 1
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    packages: dict[str, int] = {}
    for frames, count in stacks:
        functions = [_function(f) for f in frames if " (" in f]
        if not functions:
            continue
        own[functions[-1]] = own.get(functions[-1], 0) + count
        packages[_package(functions[-1])] = packages.get(_package(functions[-1]), 0) + count
        for function in set(functions):
            inclusive[function] = inclusive.get(function, 0) + count

    def ranked(counts: dict[str, int], n: int) -> list[str]:
        best = sorted(counts.items(), key=lambda kv: -kv[1])[:n]
        return [f"{100 * c / total:6.1f}%  {name}" for name, c in best]

    return "\n".join(
        [
            f"{impl} under py-spy --nonblocking, 100 connections x 10 messages in flight: "
            f"{total} samples (idle excluded)",
            "",
            f"Top {top} functions by own time:",
            *ranked(own, top),
            "",
            f"Top {top} functions by inclusive time:",
            *ranked(inclusive, top),
            "",
            "Own time by package (stdlib modules as 'stdlib (file)'):",
            *ranked(packages, 20),
            "",
        ]
    )


#: Functions called once per frame sent, by the libraries that have them: (file, name).
FRAME_SERIALIZERS = [
    ("anywire/websocket/_frames.py", "send"),  # FastConnection.send: one call per frame
    ("wsproto/frame_protocol.py", "_serialize_frame"),
    ("websockets/frames.py", "serialize"),
]


def _echoed(stats: dict[Any, Any]) -> tuple[float, str] | None:
    """Messages echoed while profiling: frames sent (close frames are noise).

    Counted by the frame serializer that was called most (one library may use
    another's for some frames only).
    """
    found = [
        (value[1], f"calls to {name}() in {fragment}")
        for fragment, name in FRAME_SERIALIZERS
        for (file, _, func), value in stats.items()
        if fragment in file and func == name
    ]
    return max(found, default=None)


def summarize_cprofile(path: Path, impl: str, top: int, estimate: float) -> str:
    """Own time and calls per echoed message from cProfile's stats.

    Echoed messages are counted by the frame serializer's calls; without one (the
    bare TCP echo) ``estimate`` is used: the load generator's rate times the profiled
    seconds, an overestimate since cProfile slows the server. cProfile counts every
    resumption of a coroutine as a call: for ``async def`` functions, calls/msg
    counts resumptions.
    """
    import pstats

    stats: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values()) or 1.0
    echoed, source = _echoed(stats) or (estimate, "estimated from the load generator's rate")
    echoed = max(echoed, 1.0)
    best = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    lines = [
        f"{impl} under cProfile, same scenario: {echoed:,.0f} messages echoed while "
        f"profiling ({source}), {total:.2f} s of profiled CPU",
        "(cProfile adds a cost to every call: trust the call counts, read the shares "
        "as a second opinion next to py-spy's; coroutine resumptions count as calls)",
        "",
        f"Top {top} functions by own time:   own%  calls/msg  function",
    ]
    for (file, line, func), (_cc, ncalls, tottime, _ct, _callers) in best:
        where = func if file == "~" else f"{func} ({_short_path(file)}:{line})"
        lines.append(f"{100 * tottime / total:6.1f}%  {ncalls / echoed:9.2f}  {where}")
    return "\n".join([*lines, ""])
