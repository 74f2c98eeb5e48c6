"""Tests of the reconnect policy: the pure Backoff, then the anyio Reconnector."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import ssl
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import anywire.reconnect
from anywire.errors import (
    ConcurrencyError,
    ConnectFailed,
    ConnectionClosed,
    HandshakeRejected,
    InvalidHandshake,
    LocalProtocolError,
    ReconnectGaveUp,
    RemoteProtocolError,
)
from anywire.reconnect import (
    Backoff,
    Reconnector,
    ReconnectPolicy,
    ReconnectState,
    default_is_retryable,
    retry,
)

from .conftest import timeout

NO_JITTER = ReconnectPolicy(jitter=0.0, initial_delay=1.0, factor=2.0, max_delay=30.0)


class FixedRandom(random.Random):
    """A Random whose random() always returns ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def failures(backoff: Backoff, count: int, now: float = 0.0) -> list[float | None]:
    return [backoff.on_failure(OSError("refused"), now) for _ in range(count)]


# --- policy ---------------------------------------------------------------------------------


def test_exports() -> None:
    for name in anywire.reconnect.__all__:
        assert hasattr(anywire.reconnect, name), name


def test_defaults() -> None:
    policy = ReconnectPolicy()
    assert (policy.first_delay, policy.initial_delay, policy.max_delay) == (0.0, 1.0, 30.0)
    assert (policy.factor, policy.jitter, policy.max_attempts) == (1.618, 0.5, None)
    assert policy.reset_after == 10.0
    assert policy.is_retryable is default_is_retryable


def test_base_delay_exponential_and_capped() -> None:
    assert [NO_JITTER.base_delay(n) for n in range(1, 9)] == [0, 1, 2, 4, 8, 16, 30, 30]


def test_base_delay_never_overflows() -> None:
    assert ReconnectPolicy(factor=10.0).base_delay(10_000) == 30.0


@pytest.mark.parametrize(
    "changes",
    [
        {"initial_delay": -1.0},
        {"max_delay": -1.0},
        {"first_delay": -0.1},
        {"reset_after": -1.0},
        {"factor": 0.5},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"max_attempts": -1},
        {"delays": ()},
        {"delays": (1.0, -1.0)},
        {"delays": (60.0,)},
    ],
)
def test_invalid_policy(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        dataclasses.replace(ReconnectPolicy(), **changes)  # type: ignore[arg-type]


def test_from_delays_is_signalr_default() -> None:
    policy = ReconnectPolicy.from_delays([0, 2, 10, 30])
    assert policy.max_attempts == 4
    assert policy.jitter == 0.0
    assert [policy.base_delay(n) for n in range(1, 5)] == [0, 2, 10, 30]
    backoff = policy.start()
    assert backoff.on_lost(0.0) == 0
    assert failures(backoff, 4) == [2, 10, 30, None]


def test_from_delays_repeat() -> None:
    backoff = ReconnectPolicy.from_delays([1, 5], repeat=True).start()
    assert failures(backoff, 5) == [1, 5, 5, 5, 5]


def test_from_delays_empty_never_reconnects() -> None:
    assert ReconnectPolicy.from_delays([]).start().on_failure(OSError(), 0.0) is None
    with pytest.raises(ValueError):  # noqa: PT011
        ReconnectPolicy.from_delays([], repeat=True)


# --- default_is_retryable -----------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(),
        ConnectionResetError(),
        OSError("Name or service not known"),
        TimeoutError(),
        anyio.BrokenResourceError(),
        anyio.EndOfStream(),
        RemoteProtocolError("bad frame"),
        HandshakeRejected("busy", status_code=503),
        HandshakeRejected("slow down", status_code=429),
        HandshakeRejected("timeout", status_code=408),
        ConnectionClosed.for_code(1000),
        ConnectionClosed.for_code(1001),
        ConnectionClosed.for_code(1006),
        ConnectionClosed.for_code(1011),
        ConnectionClosed.for_code(1012),
        ConnectionClosed.for_code(4000),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("bad"),
    ],
    ids=repr,
)
def test_retryable(exc: BaseException) -> None:
    assert default_is_retryable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        TypeError(),
        ValueError(),
        LocalProtocolError("our bug"),
        InvalidHandshake("not an upgrade"),
        HandshakeRejected("who are you", status_code=401),
        HandshakeRejected("forbidden", status_code=403),
        HandshakeRejected("not found", status_code=404),
        HandshakeRejected("no status"),
        ConnectionClosed.for_code(1002),
        ConnectionClosed.for_code(1008),
        ConnectionClosed.for_code(3000),
        ReconnectGaveUp("done", attempts=3),
        KeyboardInterrupt(),
        asyncio.CancelledError(),
        GeneratorExit(),
    ],
    ids=repr,
)
def test_fatal(exc: BaseException) -> None:
    assert not default_is_retryable(exc)


def _wrapped_certificate_error() -> httpx.ConnectError:
    """A certificate error as httpx reports it (chained through httpcore)."""
    try:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed")
        except ssl.SSLError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as exc:
        return exc


def test_failed_certificate_check_is_fatal() -> None:
    assert not default_is_retryable(ssl.SSLCertVerificationError(1, "hostname mismatch"))
    assert not default_is_retryable(_wrapped_certificate_error())
    assert default_is_retryable(ssl.SSLEOFError(8, "EOF in violation of protocol"))
    assert not default_is_retryable(_connect_failed(_wrapped_certificate_error()))


def _connect_failed(cause: BaseException | None) -> ConnectFailed:
    error = ConnectFailed("could not connect")
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("cause", "retryable"),
    [
        (None, True),
        (httpx.ConnectError("refused"), True),
        (httpx.ConnectTimeout("slow"), True),
        (TimeoutError(), True),
        (httpx.UnsupportedProtocol("gopher://"), False),
        (httpx.LocalProtocolError("bad header"), False),
    ],
    ids=repr,
)
def test_connect_failed_is_judged_by_its_cause(
    cause: BaseException | None, retryable: bool
) -> None:
    assert default_is_retryable(_connect_failed(cause)) is retryable


def test_base_exceptions_never_retried_even_by_a_custom_hook() -> None:
    backoff = ReconnectPolicy(is_retryable=lambda exc: True).start()
    assert backoff.on_failure(KeyboardInterrupt(), 0.0) is None
    assert backoff.fatal
    assert backoff.on_failure(ValueError(), 0.0) is not None


# --- Backoff --------------------------------------------------------------------------------


def test_backoff_exact_delays_without_jitter() -> None:
    assert failures(NO_JITTER.start(), 8) == [0, 1, 2, 4, 8, 16, 30, 30]


def test_backoff_jitter_bounds() -> None:
    policy = dataclasses.replace(NO_JITTER, jitter=0.5)
    assert failures(policy.start(FixedRandom(0.0)), 4) == [0, 1, 2, 4]
    assert failures(policy.start(FixedRandom(0.5)), 4) == [0, 0.75, 1.5, 3]
    full = dataclasses.replace(NO_JITTER, jitter=1.0)
    assert failures(full.start(FixedRandom(0.75)), 3) == [0, 0.25, 0.5]


def test_backoff_seeded_random_is_deterministic() -> None:
    policy = ReconnectPolicy(first_delay=1.0)
    expected = [policy.base_delay(n) * (1 - 0.5 * r) for n, r in enumerate(_randoms(7, 5), 1)]
    assert failures(policy.start(random.Random(7)), 5) == expected


def _randoms(seed: int, count: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(count)]


def test_backoff_reset_after_a_stable_connection() -> None:
    backoff = NO_JITTER.start()
    assert failures(backoff, 4) == [0, 1, 2, 4]
    backoff.on_connected(100.0)
    assert backoff.attempts == 5
    assert backoff.on_lost(110.0) == 0  # up 10 s = reset_after: reconnect at once
    assert backoff.attempts == 0
    assert failures(backoff, 2) == [1, 2]


def test_backoff_short_connection_keeps_backing_off() -> None:
    backoff = NO_JITTER.start()
    assert failures(backoff, 3) == [0, 1, 2]
    backoff.on_connected(100.0)
    assert backoff.on_lost(109.9) == 4  # a flapping server backs off too
    assert backoff.attempts == 4


def test_backoff_loss_with_fatal_error() -> None:
    backoff = NO_JITTER.start()
    backoff.on_connected(0.0)
    assert backoff.on_lost(100.0, ConnectionClosed.for_code(1008)) is None
    assert backoff.fatal


def test_backoff_max_attempts_counts_reconnects() -> None:
    policy = dataclasses.replace(NO_JITTER, max_attempts=3)
    initial = policy.start()
    assert failures(initial, 4) == [0, 1, 2, None]  # the first attempt plus 3 reconnects
    assert not initial.fatal
    after_loss = policy.start()
    after_loss.on_connected(0.0)
    assert after_loss.on_lost(60.0) == 0
    assert failures(after_loss, 3) == [1, 2, None]  # 3 reconnects


def test_never_reconnects() -> None:
    backoff = ReconnectPolicy.never().start()
    assert backoff.on_failure(OSError(), 0.0) is None
    backoff = ReconnectPolicy.never().start()
    backoff.on_connected(0.0)
    assert backoff.on_lost(100.0) is None
    assert not backoff.fatal


policies = st.builds(
    ReconnectPolicy,
    first_delay=st.floats(0, 100),
    initial_delay=st.floats(0, 100),
    max_delay=st.floats(0, 1000),
    factor=st.floats(1, 10),
    jitter=st.floats(0, 1),
    max_attempts=st.none() | st.integers(0, 20),
    reset_after=st.floats(0, 100),
)
events = st.lists(
    st.tuples(st.sampled_from(["fail", "connect", "lose"]), st.floats(0, 50)), max_size=60
)


@given(policy=policies, script=events, seed=st.integers())
def test_delays_stay_within_bounds(
    policy: ReconnectPolicy, script: list[tuple[str, float]], seed: int
) -> None:
    backoff = policy.start(random.Random(seed))
    now = 0.0
    for event, step in script:
        now += step
        if event == "connect":
            backoff.on_connected(now)
            continue
        delay = backoff.on_lost(now) if event == "lose" else backoff.on_failure(OSError(), now)
        assert delay is None or 0 <= delay <= policy.max_delay


@given(policy=policies, n=st.integers(2, 500))
def test_base_delay_non_decreasing(policy: ReconnectPolicy, n: int) -> None:
    assert policy.base_delay(n) <= policy.base_delay(n + 1)
    if policy.first_delay <= policy.initial_delay:
        assert policy.base_delay(1) <= policy.base_delay(2)


@given(policy=policies, before=st.integers(0, 30), up=st.floats(0, 100))
def test_reset_after_property(policy: ReconnectPolicy, before: int, up: float) -> None:
    policy = dataclasses.replace(policy, jitter=0.0, max_attempts=None)
    backoff = policy.start()
    failures(backoff, before)
    backoff.on_connected(0.0)
    delay = backoff.on_lost(up)
    expected_n = 1 if up >= policy.reset_after else before + 1
    assert delay == policy.base_delay(expected_n)


@given(max_attempts=st.integers(0, 50))
def test_gives_up_exactly_at_max_attempts(max_attempts: int) -> None:
    backoff = ReconnectPolicy(max_attempts=max_attempts).start()
    delays = failures(backoff, max_attempts + 1)
    assert None not in delays[:-1]
    assert delays[-1] is None
    assert backoff.attempts == max_attempts + 1


# --- Reconnector ----------------------------------------------------------------------------


class FakeTime:
    """A clock and a sleep that records its delays and jumps the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.stall = False
        self.stalled = anyio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        if self.stall:
            self.stalled.set()
            await anyio.sleep_forever()
        self.now += delay
        await anyio.lowlevel.checkpoint()


class FlakyServer:
    """An attempt callable: raises each error in ``errors``, then returns a count."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        await anyio.lowlevel.checkpoint()
        if self.errors:
            raise self.errors.pop(0)
        return self.calls


def make(policy: ReconnectPolicy = NO_JITTER, **kwargs: Any) -> tuple[Reconnector[Any], FakeTime]:
    fake = FakeTime()
    reconnector: Reconnector[Any] = Reconnector(
        policy, clock=fake.clock, _sleep=fake.sleep, **kwargs
    )
    return reconnector, fake


class TestReconnector:
    pytestmark = pytest.mark.anyio

    async def test_first_attempt_is_immediate(self) -> None:
        reconnector, fake = make()
        assert await reconnector.next_attempt(FlakyServer()) == 1
        assert fake.sleeps == []
        assert reconnector.state is ReconnectState.CONNECTED

    async def test_retries_until_success(self) -> None:
        reconnector, fake = make()
        server = FlakyServer(ConnectionRefusedError(), OSError(), TimeoutError(), OSError())
        assert await reconnector.next_attempt(server) == 5
        assert fake.sleeps == [0, 1, 2, 4]
        stats = reconnector.statistics()
        assert (stats.attempts, stats.connections, stats.delay) == (5, 1, None)
        assert isinstance(stats.last_error, OSError)

    async def test_gives_up_with_cause(self) -> None:
        reconnector, fake = make(dataclasses.replace(NO_JITTER, max_attempts=2))
        errors = [OSError(1), OSError(2), OSError(3)]
        with pytest.raises(ReconnectGaveUp) as info:
            await reconnector.next_attempt(FlakyServer(*errors))
        assert info.value.attempts == 3
        assert info.value.__cause__ is errors[-1]
        assert "max_attempts=2 is reached" in str(info.value)
        assert fake.sleeps == [0, 1]
        assert reconnector.state is ReconnectState.CLOSED
        with pytest.raises(anyio.ClosedResourceError):
            await reconnector.next_attempt(FlakyServer())

    async def test_non_retryable_error_passes_through(self) -> None:
        reconnector, _ = make()
        error = HandshakeRejected("no", status_code=401)
        server = FlakyServer(OSError(), error)
        with pytest.raises(HandshakeRejected) as info:
            await reconnector.next_attempt(server)
        assert info.value is error
        assert server.calls == 2
        assert reconnector.state is ReconnectState.CLOSED

    async def test_stable_loss_reconnects_at_once(self) -> None:
        reconnector, fake = make()
        await reconnector.next_attempt(FlakyServer())
        fake.now += 60
        assert reconnector.lost(ConnectionClosed.for_code(1006)) == 0
        assert reconnector.state is ReconnectState.WAITING
        assert await reconnector.next_attempt(FlakyServer(OSError())) == 2
        assert fake.sleeps == [0, 1]

    async def test_short_connection_backs_off(self) -> None:
        reconnector, fake = make()
        await reconnector.next_attempt(FlakyServer(OSError(), OSError()))
        fake.now += 1  # below reset_after
        assert reconnector.lost() == 2  # the third reconnect of the streak
        await reconnector.next_attempt(FlakyServer())
        assert fake.sleeps == [0, 1, 2]

    async def test_from_delays_after_loss(self) -> None:
        reconnector, fake = make(ReconnectPolicy.from_delays([0, 2, 10, 30]))
        await reconnector.next_attempt(FlakyServer())
        fake.now += 60
        reconnector.lost(ConnectionClosed.for_code(1001))
        errors = [OSError(n) for n in range(4)]
        with pytest.raises(ReconnectGaveUp) as info:
            await reconnector.next_attempt(FlakyServer(*errors))
        assert fake.sleeps == [0, 2, 10, 30]
        assert info.value.attempts == 4
        assert info.value.__cause__ is errors[-1]

    async def test_fatal_loss_gives_up_on_next_attempt(self) -> None:
        reconnector, _ = make()
        await reconnector.next_attempt(FlakyServer())
        closed = ConnectionClosed.for_code(1008, "policy violation")
        assert reconnector.lost(closed) is None
        assert reconnector.state is ReconnectState.CLOSED
        server = FlakyServer()
        with pytest.raises(ReconnectGaveUp) as info:
            await reconnector.next_attempt(server)
        assert info.value.__cause__ is closed
        assert server.calls == 0
        assert reconnector.lost() is None  # a no-op once closed

    async def test_never_policy(self) -> None:
        reconnector, fake = make(ReconnectPolicy.never())
        await reconnector.next_attempt(FlakyServer())
        fake.now += 60
        assert reconnector.lost() is None
        with pytest.raises(ReconnectGaveUp) as info:
            await reconnector.next_attempt(FlakyServer())
        assert info.value.attempts == 0
        assert info.value.__cause__ is None

    async def test_state_changes_and_hook(self) -> None:
        seen: list[ReconnectState] = []
        reconnector, fake = make(on_state_change=seen.append)
        assert reconnector.state is ReconnectState.IDLE
        await reconnector.next_attempt(FlakyServer(OSError()))
        fake.now += 60
        reconnector.lost()
        reconnector.close()
        s = ReconnectState
        assert seen == [
            s.CONNECTING,
            s.WAITING,
            s.CONNECTING,
            s.CONNECTED,
            s.WAITING,
            s.CLOSED,
        ]

    async def test_failing_hook_is_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        def hook(state: ReconnectState) -> None:
            raise RuntimeError("hook bug")

        reconnector, _ = make(on_state_change=hook)
        assert await reconnector.next_attempt(FlakyServer()) == 1
        assert "error in on_state_change" in caplog.text

    async def test_logs_retries_and_give_up(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="anywire.reconnect")
        reconnector, _ = make(dataclasses.replace(NO_JITTER, max_attempts=1))
        with pytest.raises(ReconnectGaveUp):
            await reconnector.next_attempt(FlakyServer(OSError("refused"), OSError("again")))
        levels = [(r.levelno, r.name) for r in caplog.records]
        assert levels == [
            (logging.INFO, "anywire.reconnect"),
            (logging.WARNING, "anywire.reconnect"),
        ]
        assert "OSError: refused" in caplog.records[0].getMessage()

    async def test_custom_logger(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO)
        reconnector, _ = make(logger=logging.getLogger("my.client"))
        await reconnector.next_attempt(FlakyServer(OSError()))
        assert [r.name for r in caplog.records] == ["my.client"]

    async def test_lost_requires_a_connection(self) -> None:
        reconnector, _ = make()
        with pytest.raises(LocalProtocolError):
            reconnector.lost()

    async def test_concurrent_next_attempt(self) -> None:
        reconnector, waiting = slow_reconnector()
        async with anyio.create_task_group() as tg:
            tg.start_soon(reconnector.next_attempt, FlakyServer(OSError()))
            await waiting.wait()
            with pytest.raises(ConcurrencyError):
                await reconnector.next_attempt(FlakyServer())
            tg.cancel_scope.cancel()

    async def test_cancel_during_wait_stops_at_once(self) -> None:
        reconnector, waiting = slow_reconnector()
        server = FlakyServer(OSError())
        with anyio.fail_after(timeout(5)):
            async with anyio.create_task_group() as tg:
                tg.start_soon(reconnector.next_attempt, server)
                await waiting.wait()
                tg.cancel_scope.cancel()
        assert server.calls == 1
        assert reconnector.state is ReconnectState.WAITING

    async def test_cancel_during_wait_resumes_the_remaining_time(self) -> None:
        reconnector, fake = make(dataclasses.replace(NO_JITTER, first_delay=10))
        server = FlakyServer(OSError())
        fake.stall = True
        async with anyio.create_task_group() as tg:
            tg.start_soon(reconnector.next_attempt, server)
            await fake.stalled.wait()
            tg.cancel_scope.cancel()
        assert server.calls == 1
        fake.stall = False
        fake.now += 4
        assert await reconnector.next_attempt(server) == 2
        assert fake.sleeps == [10, 6]

    async def test_cancel_during_attempt_allows_a_new_attempt(self) -> None:
        reconnector, fake = make()
        started = anyio.Event()

        async def stalls() -> int:
            started.set()
            await anyio.sleep_forever()
            raise AssertionError("unreachable")

        async with anyio.create_task_group() as tg:
            tg.start_soon(reconnector.next_attempt, stalls)
            await started.wait()
            tg.cancel_scope.cancel()
        assert reconnector.state is ReconnectState.WAITING
        assert await reconnector.next_attempt(FlakyServer()) == 1
        assert fake.sleeps == []

    async def test_close_interrupts_the_wait(self) -> None:
        reconnector, waiting = slow_reconnector()
        server = FlakyServer(OSError())
        result: list[BaseException] = []

        async def run() -> None:
            try:
                await reconnector.next_attempt(server)
            except anyio.ClosedResourceError as exc:
                result.append(exc)

        with anyio.fail_after(timeout(5)):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await waiting.wait()
                reconnector.close()
        assert len(result) == 1
        assert server.calls == 1

    async def test_retry_helper(self) -> None:
        policy = ReconnectPolicy(first_delay=0, initial_delay=0)
        assert await retry(FlakyServer(OSError(), OSError()), policy) == 3

    async def test_repr(self) -> None:
        reconnector, _ = make()
        assert repr(reconnector) == "<Reconnector state=idle attempts=0 delay=None>"


def slow_reconnector() -> tuple[Reconnector[int], anyio.Event]:
    """A Reconnector with real sleeps of an hour, and an event set once it waits."""
    waiting = anyio.Event()

    def hook(state: ReconnectState) -> None:
        if state is ReconnectState.WAITING:
            waiting.set()

    policy = ReconnectPolicy(first_delay=3600, initial_delay=3600, max_delay=3600)
    return Reconnector(policy, on_state_change=hook), waiting


# --- how a client builds ``async for conn in connect(url)`` on a Reconnector ---------------


class FakeConnection:
    def __init__(self, number: int) -> None:
        self.number = number
        self.error: BaseException | None = None  # how the connection ended
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True
        await anyio.lowlevel.checkpoint()


class FakeConnect:
    """The shape of ``anywire.websocket.connect`` as an async iterator."""

    def __init__(self, server: FlakyServer, reconnector: Reconnector[FakeConnection]) -> None:
        self._server = server
        self._reconnector = reconnector
        self._conn: FakeConnection | None = None

    def __aiter__(self) -> FakeConnect:
        return self

    async def __anext__(self) -> FakeConnection:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.aclose()
            self._reconnector.lost(conn.error)
        try:
            self._conn = await self._reconnector.next_attempt(self._open)
        except anyio.ClosedResourceError:
            raise StopAsyncIteration from None
        return self._conn

    async def _open(self) -> FakeConnection:
        return FakeConnection(await self._server())

    async def aclose(self) -> None:
        self._reconnector.close()
        if self._conn is not None:
            await self._conn.aclose()


@pytest.mark.anyio
async def test_client_iteration_shape() -> None:
    reconnector, fake = make(dataclasses.replace(NO_JITTER, max_attempts=2))
    server = FlakyServer(OSError(), ConnectionResetError())  # then connection 3 works
    seen: list[int] = []

    async def use_connections() -> None:
        async for conn in FakeConnect(server, reconnector):
            seen.append(conn.number)
            fake.now += 60  # a stable connection...
            conn.error = ConnectionClosed.for_code(1006)  # ...lost abruptly
            if conn.number == 4:
                server.errors = [OSError(), OSError("down")]

    with pytest.raises(ReconnectGaveUp) as info:
        await use_connections()
    assert seen == [3, 4]
    # two retries to connect; at once after each loss; two reconnects, then give up
    assert fake.sleeps == [0, 1, 0, 0, 1]
    assert info.value.attempts == 2
    assert str(info.value.__cause__) == "down"


@pytest.mark.anyio
async def test_client_iteration_stops_when_closed() -> None:
    reconnector, _ = make()
    client = FakeConnect(FlakyServer(), reconnector)
    async for conn in client:
        await client.aclose()
        assert conn.closed
    assert reconnector.state is ReconnectState.CLOSED
