"""The node packages of bench/package.json (load generators and node peers)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def ensure_node_packages() -> Path:
    """``npm ci`` into bench/node_modules unless every dependency is there; return it."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("node and npm are needed for the benchmarks (node >= 18)")
    modules = BENCH / "node_modules"
    wanted = json.loads((BENCH / "package.json").read_text())["dependencies"]
    if all((modules / name / "package.json").is_file() for name in wanted):
        return modules
    print("installing the benchmarks' node packages into bench/node_modules", flush=True)
    cmd = ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(BENCH)]
    subprocess.run(cmd, check=True)
    return modules
