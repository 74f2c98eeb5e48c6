"""Shared test configuration.

Every async test runs on asyncio (debug on) and, when trio is installed, on
trio: mark a module with ``pytestmark = pytest.mark.anyio``. The ids are
``asyncio`` and ``trio``. This file must work without trio installed (the
``tests_no_trio`` nox session checks that).

TLS tests share one trustme CA: ``server_context`` holds a certificate for
``127.0.0.1`` and ``client_context`` trusts the CA (``ca``, to issue more).
"""

from __future__ import annotations

import importlib.util
import os
import ssl

import pytest
import trustme

HAVE_TRIO = importlib.util.find_spec("trio") is not None

_BACKENDS = [pytest.param(("asyncio", {"debug": True}), id="asyncio")]
if HAVE_TRIO:
    _BACKENDS.append(pytest.param(("trio", {}), id="trio"))

#: One timeout unit for the whole suite; slow machines set ANYWIRE_TEST_TIMEOUT_FACTOR.
TIMEOUT_FACTOR = float(os.environ.get("ANYWIRE_TEST_TIMEOUT_FACTOR", "1"))


def timeout(seconds: float) -> float:
    """Scale a test deadline by ``ANYWIRE_TEST_TIMEOUT_FACTOR``."""
    return seconds * TIMEOUT_FACTOR


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    return request.param


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context
