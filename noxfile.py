"""Development sessions for anywire.

``nox`` with no arguments runs what CI runs (see ``.ci/run``), fastest checks first:
lint, typecheck, tests on 3.11/3.12/3.13, tests_no_trio, tests_lowest, interop, docs.
The benchmarks (``bench*``) and the load test (``load``) only run when named: ``nox -s bench``.

Arguments after ``--`` go to pytest: ``nox -s tests-3.12 -- -k websocket -x``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

nox.needs_version = ">=2025.10.16"  # download_python; session times in the summary
nox.options.default_venv_backend = "uv"

ON_CI = os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}
if ON_CI:
    # CI has 3.11, 3.12 and 3.13 on PATH: a missing one is a broken machine, not a skip,
    # and nothing may be downloaded instead.
    nox.options.error_on_missing_interpreters = True
    nox.options.download_python = "never"

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
PYTHONS = ["3.11", "3.12", "3.13"]
OLDEST = PYTHONS[0]
INTEROP = ROOT / "tests" / "interop"
LINT_PATHS = ["src", "tests", "examples", "bench", "noxfile.py"]
# The pyproject distributions pinned by ``tests_lowest``: runtime deps plus the trio extra.
RUNTIME_REQUIREMENTS = [
    *PYPROJECT["project"]["dependencies"],
    *PYPROJECT["project"]["optional-dependencies"]["trio"],
]


def group(*names: str) -> tuple[str, ...]:
    """Requirements of ``[dependency-groups]`` entries in pyproject.toml."""
    return nox.project.dependency_groups(PYPROJECT, *names)


def install_project(session: nox.Session, extras: str = "", *args: str) -> None:
    """Install anywire itself (a real wheel, not editable) with ``extras``.

    ``--reinstall-package`` rebuilds it from the work tree every time, so a reused venv
    (``nox -r``) never keeps stale sources, whatever uv's cache holds.
    """
    target = f".[{extras}]" if extras else "."
    session.install("--reinstall-package", "anywire", *args, target)


def pytest(
    session: nox.Session,
    *args: str,
    env: dict[str, str] | None = None,
    success_codes: list[int] | None = None,
) -> None:
    """Run pytest; under ``.ci/run`` also write a JUnit report for its closing summary."""
    report: list[str] = []
    if junit_dir := os.environ.get("ANYWIRE_JUNIT_DIR"):
        report = [f"--junitxml={Path(junit_dir) / session.name}.xml"]
    session.run("pytest", *report, *args, *session.posargs, env=env, success_codes=success_codes)


def pytest_unit(session: nox.Session) -> None:
    """Everything but the interop suite (it needs node and peer libraries)."""
    pytest(session, "-m", "not interop", "--ignore=tests/interop")


@nox.session(python=OLDEST)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*group("lint"))
    paths = [p for p in LINT_PATHS if (ROOT / p).exists()]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", "--diff", *paths)


@nox.session(python=OLDEST)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src (the files come from [tool.mypy] in pyproject.toml)."""
    install_project(session, "", *group("typecheck"))
    session.run("mypy", "--strict", *session.posargs)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The suite on asyncio and trio (the conftest parametrizes anyio_backend)."""
    install_project(session, "trio", *group("test"))
    pytest_unit(session)


@nox.session(python=OLDEST)
def tests_no_trio(session: nox.Session) -> None:
    """The suite with trio absent: only the asyncio backend, nothing may import trio."""
    install_project(session, "", *group("test"))
    session.run(
        "python",
        "-c",
        "import importlib.util, sys; "
        "sys.exit('trio is installed in tests_no_trio' if importlib.util.find_spec('trio') "
        "else 0)",
    )
    pytest_unit(session)


@nox.session(python=OLDEST)
def tests_lowest(session: nox.Session) -> None:
    """The suite with anyio, h11, wsproto, httpx and trio at their pyproject lower bounds.

    Only anywire's own requirements are direct here (uv's lowest-direct); test tools are
    installed afterwards at their newest and leave the pinned packages alone.
    """
    install_project(session, "trio", "--resolution", "lowest-direct")
    session.install(*group("test"))
    session.run("uv", "pip", "list", external=True)
    check_lowest(session)
    pytest_unit(session)


LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
)


def check_lowest(session: nox.Session) -> None:
    """Fail unless every runtime requirement resolved to its ``>=`` lower bound."""
    out = session.run("python", "-c", LIST_DISTRIBUTIONS, silent=True)
    if not isinstance(out, str):  # ``nox --install-only``: nothing ran
        return
    installed = {canonicalize_name(name): version for name, version in json.loads(out).items()}
    for text in RUNTIME_REQUIREMENTS:
        req = Requirement(text)
        lows = [Version(s.version) for s in req.specifier if s.operator == ">="]
        have = installed.get(canonicalize_name(req.name))
        if not lows or have is None or Version(have) != min(lows):
            session.error(f"{req.name}: installed {have}, expected the lower bound of {text!r}")


@nox.session(python=OLDEST)
def interop(session: nox.Session) -> None:
    """Real peers: node packages from tests/interop/package.json, websockets, ...

    The node packages go to .nox/.cache/interop-node; tests find them through
    ``NODE_PATH`` (``ANYWIRE_NODE_MODULES`` names the same folder).
    """
    install_project(session, "trio", *group("test", "interop"))
    env: dict[str, str] = {}
    if (INTEROP / "package.json").is_file():
        node_modules = install_node_packages(session)
        env = {"NODE_PATH": str(node_modules), "ANYWIRE_NODE_MODULES": str(node_modules)}
    has_tests = any(INTEROP.rglob("test_*.py")) or any(INTEROP.rglob("*_test.py"))
    # While tests/interop holds no tests, pytest exits 5 ("no tests collected"); that is a
    # success in this session only, and only until the first interop test lands.
    pytest(
        session,
        *(["tests/interop"] if INTEROP.is_dir() else []),
        "-m",
        "interop",
        env=env,
        success_codes=[0] if has_tests else [0, 5],
    )


def install_node_packages(session: nox.Session) -> Path:
    """npm-install tests/interop/package.json (and its lock file) into the nox cache."""
    prefix = Path(session.cache_dir) / "interop-node"
    prefix.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        if (INTEROP / name).is_file():
            shutil.copyfile(INTEROP / name, prefix / name)
    session.run("npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), external=True)
    return prefix / "node_modules"


@nox.session(python=OLDEST, default=True)
def docs(session: nox.Session) -> None:
    """The docs site into docs/_build/html: Sphinx, nitpicky, every warning an error.

    ``-E`` rereads every page, so a second run reports the warnings of unchanged pages too.
    Intersphinx reads local inventories (docs/_inventories): no network is needed.
    """
    install_project(session, "", *group("docs"))
    session.run(
        "sphinx-build", "-E", "-n", "-W", "--keep-going", "-b", "html",
        "docs", "docs/_build/html", *session.posargs,
    )  # fmt: skip


def bench_script(session: nox.Session, script: str) -> None:
    """Install anywire with trio and the ``bench`` group, then run ``bench/<script>``."""
    if not (ROOT / "bench" / script).is_file():
        session.skip(f"bench/{script} does not exist yet")
    install_project(session, "trio", *group("bench"))
    session.run("python", f"bench/{script}", *session.posargs)


@nox.session(python=OLDEST, default=False)
def bench(session: nox.Session) -> None:
    """WebSocket servers side by side: python bench/run.py (arguments after -- go to it)."""
    bench_script(session, "run.py")


@nox.session(python=OLDEST, default=False)
def bench_http(session: nox.Session) -> None:
    """The ASGI runner vs uvicorn and hypercorn (wrk, node): bench/http_run.py."""
    bench_script(session, "http_run.py")


@nox.session(python=OLDEST, default=False)
def bench_engineio(session: nox.Session) -> None:
    """Engine.IO servers side by side (node engine.io-client load): bench/eio_server_run.py."""
    bench_script(session, "eio_server_run.py")


@nox.session(python=OLDEST, default=False)
def bench_engineio_client(session: nox.Session) -> None:
    """Engine.IO clients side by side against node engine.io: bench/eio_client_run.py."""
    bench_script(session, "eio_client_run.py")


@nox.session(python=OLDEST, default=False)
def load(session: nox.Session) -> None:
    """Load test: 1,000 websocket + 200 polling Engine.IO clients, bench/eio_load.py."""
    bench_script(session, "eio_load.py")
