"""The official ``engine.io-client`` browser build: fetched once with npm, then cached.

The demo page loads ``dist/engine.io.min.js`` of the npm package
``engine.io-client`` at :data:`ENGINEIO_CLIENT_VERSION` (global ``eio``). It is
never part of this repository and never loaded from a CDN: the first run takes
it from the npm registry with ``npm pack`` into the cache folder
(:func:`cache_dir`) and every run serves it from there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from anywire.errors import AnywireError

__all__ = [
    "CACHE_ENV",
    "ENGINEIO_CLIENT_VERSION",
    "ClientBuildUnavailable",
    "cache_dir",
    "client_path",
    "ensure_client",
]

#: The one pinned version of the npm package ``engine.io-client``.
ENGINEIO_CLIENT_VERSION = "6.6.8"
#: Environment variable naming the cache folder (else the XDG cache folder).
CACHE_ENV = "ANYWIRE_DEMO_CACHE"

_PACKAGE = "engine.io-client"
_MEMBER = "package/dist/engine.io.min.js"
_NPM_TIMEOUT = 300.0

INSTALL_NPM = (
    "the demo page needs the official {package} {version} browser build, which the\n"
    "first run fetches with npm, and npm is not installed. Install Node.js and npm\n"
    "(Debian/Ubuntu: sudo apt install npm; Fedora: sudo dnf install npm;\n"
    "macOS: brew install node), then run the demo again."
)


class ClientBuildUnavailable(AnywireError):
    """The browser build is not cached and could not be fetched (the message says why)."""


def cache_dir() -> Path:
    """``$ANYWIRE_DEMO_CACHE``, else ``$XDG_CACHE_HOME/anywire/demo`` (``~/.cache/...``)."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "anywire" / "demo"


def client_path(cache: Path | None = None) -> Path:
    """Where the cached ``engine.io.min.js`` lives (whether or not it is there yet)."""
    folder = cache if cache is not None else cache_dir()
    return folder / f"{_PACKAGE}-{ENGINEIO_CLIENT_VERSION}" / "engine.io.min.js"


def ensure_client(cache: Path | None = None) -> Path:
    """The cached browser build; fetch it with ``npm pack`` first if it is missing.

    :raises ClientBuildUnavailable: npm is missing, or it failed
    """
    target = client_path(cache)
    if target.is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise ClientBuildUnavailable(
            INSTALL_NPM.format(package=_PACKAGE, version=ENGINEIO_CLIENT_VERSION)
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tarball = _npm_pack(npm, Path(tmp))
        _extract(tarball, target)
    return target


def _npm_pack(npm: str, destination: Path) -> Path:
    spec = f"{_PACKAGE}@{ENGINEIO_CLIENT_VERSION}"
    command = [npm, "pack", spec, "--pack-destination", str(destination), "--silent"]
    try:
        subprocess.run(
            command,
            cwd=destination,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_NPM_TIMEOUT,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        output = (getattr(exc, "stderr", None) or "").strip()
        detail = f"\n{output[-1500:]}" if output else ""
        raise ClientBuildUnavailable(f"`{' '.join(command)}` failed: {exc}{detail}") from exc
    tarballs = sorted(destination.glob("*.tgz"))
    if len(tarballs) != 1:
        raise ClientBuildUnavailable(f"`npm pack {spec}` left no single tarball: {tarballs}")
    return tarballs[0]


def _extract(tarball: Path, target: Path) -> None:
    """Copy ``dist/engine.io.min.js`` out of the package tarball (atomically)."""
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            member = archive.extractfile(_MEMBER)
            if member is None:
                raise KeyError(_MEMBER)
            body = member.read()
    except (OSError, tarfile.TarError, KeyError) as exc:
        raise ClientBuildUnavailable(f"{tarball.name} holds no {_MEMBER}: {exc}") from exc
    marker = f"Engine.IO v{ENGINEIO_CLIENT_VERSION}".encode()
    if marker not in body[:200]:
        raise ClientBuildUnavailable(f"{tarball.name}: {_MEMBER} is not {marker.decode()}")
    partial = target.with_suffix(".partial")
    partial.write_bytes(body)
    os.replace(partial, target)
