"""Engine.IO clients side by side against one node ``engine.io`` echo server.

    python bench/eio_client_run.py                 # about 5 minutes; writes docs/benchmarks.md
    python bench/eio_client_run.py --duration 1 --rounds 1 --no-write   # a smoke run

Clients: anywire's (``anywire.engineio.connect``) on asyncio and on trio, node
``engine.io-client`` and python-engineio's ``AsyncClient`` (aiohttp), each in a process
of its own (``eio_client_py.py``, ``eio_client_node.mjs``) pinned to the first CPU; the
server, ``eio_node_server.mjs`` (npm ``engine.io``), is pinned to the last one, a fresh
process for each measurement. Scenarios, each on the websocket and on the polling
transport: one client with one 32-byte text message in flight (sequential echo), and
100 clients with 10 in flight each, all in one client process. Reported: echoed
messages/s, and the client process's CPU time per message (user + system from
``/proc``), the figure that compares clients independently of the server.
Raw results go to ``bench/results/eio-client-*.json``, the tables to the
``engineio-client`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common_report import write_results
from _harness import (
    BENCH,
    Settings,
    add_common_args,
    children,
    missing_modules,
    pin_to,
    process_cpu,
    server_command,
    settings_from_args,
    suite_main,
    wait_for_quiet,
)

SCRIPT = "bench/eio_client_run.py"
IMPLS = ["anywire-asyncio", "anywire-trio", "engine.io-client", "python-engineio"]
TRANSPORTS = ["websocket", "polling"]
SCENARIOS = {"1x1": (1, 1), "100x10": (100, 10)}  # clients, messages in flight each
REQUIRES = {"anywire-trio": ["trio"], "python-engineio": ["engineio"]}

Result = dict[str, Any]


def client_command(
    impl: str, url: str, transport: str, scenario: str, settings: Settings
) -> list[str]:
    clients, inflight = SCENARIOS[scenario]
    common = [
        "--url",
        url,
        "--transport",
        transport,
        "--clients",
        str(clients),
        "--inflight",
        str(inflight),
        "--warmup",
        str(settings.warmup),
        "--duration",
        str(settings.duration),
    ]
    if impl == "engine.io-client":
        return ["node", str(BENCH / "eio_client_node.mjs"), *common]
    return [sys.executable, str(BENCH / "eio_client_py.py"), impl, *common]


def run_client(cmd: Sequence[str], server_pid: int, settings: Settings, limit: float) -> Result:
    """Run one client process; the server's CPU is read at its START and END lines."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, preexec_fn=pin_to(settings.client_cpu)
    )
    children.add(proc)
    marks: dict[str, tuple[float, float]] = {}
    result: Result = {"error": "no result"}
    deadline = time.monotonic() + limit
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            if line in ("START", "END"):
                marks[line] = (time.monotonic(), process_cpu(server_pid))
            elif line.startswith("{"):
                result = json.loads(line)
                break
            if time.monotonic() > deadline:
                result = {"error": f"no result within {limit:.0f} s"}
                break
    finally:
        proc.kill()
        proc.wait()
        children.discard(proc)
    if "START" in marks and "END" in marks:
        (t0, c0), (t1, c1) = marks["START"], marks["END"]
        result["server_busy"] = (c1 - c0) / (t1 - t0)
    return result


def measure(impl: str, transport: str, scenario: str, settings: Settings) -> Result:
    wait_for_quiet(settings)
    server = ["node", str(BENCH / "eio_node_server.mjs"), "--port", "0"]
    with server_command(server, settings) as (pid, port):
        cmd = client_command(impl, f"http://127.0.0.1:{port}", transport, scenario, settings)
        raw = run_client(cmd, pid, settings, settings.warmup + settings.duration + 90)
    row: Result = {"impl": impl, "transport": transport, "scenario": scenario, **raw}
    messages, seconds = raw.get("messages", 0), raw.get("seconds", 0)
    if messages and seconds:
        row["messages_per_s"] = messages / seconds
        row["cpu_us_per_message"] = raw["cpu_seconds"] / messages * 1e6
        row["client_busy"] = raw["cpu_seconds"] / seconds
    elif "error" not in row:
        row["error"] = f"no echo in the window ({raw.get('errors')})"
    return row


def progress(row: Result) -> None:
    what = f"  {row['transport']:9} {row['scenario']:6} {row['impl']:17}"
    if "messages_per_s" in row:
        print(
            f"{what} {row['messages_per_s']:9.0f} msg/s {row['cpu_us_per_message']:7.1f} µs/msg "
            f"(client {row['client_busy']:.0%}, server {row.get('server_busy', 0):.0%} busy)",
            flush=True,
        )
    else:
        print(f"{what} failed: {row.get('error')}", flush=True)


def run(impls: list[str], transports: list[str], settings: Settings) -> list[Result]:
    impls = [i for i in impls if not missing_modules(REQUIRES.get(i, []))]
    rows: list[Result] = []
    for round_ in range(settings.rounds):
        print(f"round {round_ + 1} of {settings.rounds}", flush=True)
        for transport in transports:
            for scenario in SCENARIOS:
                for impl in impls:
                    row = measure(impl, transport, scenario, settings)
                    row["round"] = round_ + 1
                    progress(row)
                    rows.append(row)
    return rows


# -- the report -------------------------------------------------------------------------


def median(rows: list[Result], key: str) -> float | None:
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else None


def cell(value: float | None, digits: int = 0, percent: bool = False) -> str:
    if value is None:
        return "failed"
    return f"{value:.0%}" if percent else f"{value:,.{digits}f}"


def pick(rows: list[Result], impl: str, transport: str, scenario: str) -> list[Result]:
    return [
        r
        for r in rows
        if r["impl"] == impl and r["transport"] == transport and r["scenario"] == scenario
    ]


def table(rows: list[Result], transport: str, impls: list[str]) -> list[str]:
    lines = [
        f"**{transport}**",
        "",
        "| client | 1 client: msg/s | CPU µs/msg | 100x10: msg/s | CPU µs/msg "
        "| client CPU busy | server CPU busy |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for impl in impls:
        one, many = pick(rows, impl, transport, "1x1"), pick(rows, impl, transport, "100x10")
        lines.append(
            f"| {impl} | {cell(median(one, 'messages_per_s'))} "
            f"| {cell(median(one, 'cpu_us_per_message'), 1)} "
            f"| {cell(median(many, 'messages_per_s'))} "
            f"| {cell(median(many, 'cpu_us_per_message'), 1)} "
            f"| {cell(median(many, 'client_busy'), percent=True)} "
            f"| {cell(median(many, 'server_busy'), percent=True)} |"
        )
    return [*lines, ""]


def polling_note(rows: list[Result]) -> list[str]:
    ours = median(pick(rows, "anywire-asyncio", "polling", "100x10"), "cpu_us_per_message")
    theirs = median(pick(rows, "python-engineio", "polling", "100x10"), "cpu_us_per_message")
    ws = median(pick(rows, "anywire-asyncio", "websocket", "100x10"), "cpu_us_per_message")
    if ours is None or theirs is None:
        return []
    verdict = "more" if ours > theirs else "less"
    return [
        f"Over polling, anywire's client (asyncio) spends {ours:.0f} µs of CPU per message, "
        f"python-engineio's aiohttp client {theirs:.0f} µs: {ours / theirs:.2f}x, so {verdict} "
        "than it. Each polling request goes through httpx, whose keep-alive request costs "
        "about 0.35 ms of CPU here (python-engineio's aiohttp is cheaper per request); "
        "batching several messages per POST and per GET is what keeps the cost per message "
        f"down. Over the WebSocket the same client spends {cell(ws, 0)} µs per message.",
        "",
    ]


def render(rows: list[Result], settings: Settings, transports: list[str]) -> str:
    impls = [i for i in IMPLS if any(r["impl"] == i for r in rows)]
    lines = [
        "## Engine.IO clients",
        "",
        "Against one node `engine.io` echo server (`bench/eio_node_server.mjs`, a fresh "
        "process per measurement). *1 client*: one client, one 32-byte text message in "
        "flight (sequential echo). *100x10*: 100 clients in one client process, 10 "
        "messages in flight each. msg/s are echoed messages per second; CPU µs/msg is the "
        "client process's user + system CPU per echoed message (the server's CPU is not "
        "counted); busy columns are for 100x10. Medians of "
        f"{settings.rounds} round(s); {settings.warmup:g} s warm-up, {settings.duration:g} s "
        "measured. "
        f"Client pinned to CPU {settings.client_cpu}, server to CPU {settings.server_cpu}.",
        "",
    ]
    for transport in transports:
        lines += table(rows, transport, impls)
    lines += polling_note(rows)
    failed = [r for r in rows if "error" in r or r.get("errors")]
    for r in failed:
        lines.append(
            f"- {r['impl']} {r['transport']} {r['scenario']} (round {r.get('round')}): "
            f"{r.get('error') or r.get('errors')}"
        )
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------


def replay(path: Path) -> str:
    """Render a run saved by :func:`main` (``--from-json``)."""
    data = json.loads(path.read_text())
    return render(data["rows"], Settings(**data["settings"]), data["transports"])


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, rounds=2, retries=False)
    parser.add_argument("--only", nargs="+", choices=IMPLS, help="these clients only")
    parser.add_argument("--transports", nargs="+", choices=TRANSPORTS, default=TRANSPORTS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    settings = settings_from_args(args)

    def measure() -> str:
        rows = run(args.only or IMPLS, args.transports, settings)
        data = {"settings": dataclasses.asdict(settings), "transports": args.transports}
        write_results("eio-client", {**data, "rows": rows})
        return render(rows, settings, args.transports)

    return suite_main(args, "engineio-client", SCRIPT, measure, replay)


if __name__ == "__main__":
    sys.exit(main())
