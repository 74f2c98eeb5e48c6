"""The one reconnect policy every anywire client uses (see docs/reconnect.md).

:class:`ReconnectPolicy` holds the settings; :class:`Backoff` is the pure,
clock-free state fed with failures, connections and losses; :class:`Reconnector`
is the anyio driver a client's ``__anext__`` builds on. A *streak* is the run of
attempts since the last stable connection: reconnect attempt ``n`` of a streak
waits ``policy.base_delay(n)`` shrunk by jitter. A connection that stayed up
``reset_after`` seconds ends the streak; one that dropped sooner counts as a
failed attempt, so a flapping server is backed off too.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

import anyio
import httpx

from anywire.errors import (
    ConcurrencyError,
    ConnectFailed,
    ConnectionClosed,
    HandshakeRejected,
    LocalProtocolError,
    ReconnectGaveUp,
    RemoteProtocolError,
)

__all__ = [
    "FATAL_CLOSE_CODES",
    "Backoff",
    "ReconnectPolicy",
    "ReconnectState",
    "ReconnectStatistics",
    "Reconnector",
    "default_is_retryable",
    "retry",
]

T = TypeVar("T")

_LOGGER = logging.getLogger("anywire.reconnect")

#: Close codes that blame the client (protocol error, unsupported or invalid
#: data, policy violation, message too big, missing extension, TLS failure,
#: and the registered 3000 Unauthorized / 3003 Forbidden): reconnecting with
#: the same settings would most likely end the same way.
FATAL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1010, 1015, 3000, 3003})

_RETRYABLE_TYPES = (
    OSError,  # refused, reset, unreachable, DNS; TimeoutError is an OSError
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    RemoteProtocolError,
    httpx.NetworkError,
    httpx.TimeoutException,
    httpx.RemoteProtocolError,
)


def default_is_retryable(exc: BaseException) -> bool:
    """Tell whether reconnecting after ``exc`` could succeed.

    Retryable: network errors (``OSError``, ``TimeoutError``, anyio's broken
    stream errors, httpx's network, timeout and remote protocol errors, a
    :class:`~anywire.errors.ConnectFailed` caused by one of those), a
    :class:`~anywire.errors.RemoteProtocolError`, a
    :class:`~anywire.errors.HandshakeRejected` with status 408, 429 or 5xx,
    and a :class:`~anywire.errors.ConnectionClosed` whose code is not in
    :data:`FATAL_CLOSE_CODES` (1000 and 1001 included: the server may close a
    session that the client wants to keep). Everything else is fatal, and so
    is a failed TLS certificate check (an ``OSError``, maybe wrapped by httpx).
    """
    if not isinstance(exc, Exception):
        return False
    if isinstance(exc, HandshakeRejected):
        status = exc.status_code
        return status is not None and (status in (408, 429) or 500 <= status <= 599)
    if isinstance(exc, ConnectionClosed):
        return exc.code not in FATAL_CLOSE_CODES
    if isinstance(exc, ConnectFailed):  # judged by what it wraps; a bare one is the network
        return exc.__cause__ is None or default_is_retryable(exc.__cause__)
    return isinstance(exc, _RETRYABLE_TYPES) and not _certificate_rejected(exc)


def _certificate_rejected(exc: BaseException | None) -> bool:
    """Whether a TLS certificate check failed in ``exc``'s chain (httpx wraps it twice)."""
    for _ in range(8):
        if exc is None or isinstance(exc, ssl.SSLCertVerificationError):
            return exc is not None
        exc = exc.__cause__ or exc.__context__
    return False


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReconnectPolicy:
    """When and how often to reconnect. Times are in seconds.

    Reconnect attempt ``n`` (1, 2, ...) of a streak waits ``base_delay(n)``
    times ``1 - jitter * U`` with ``U`` uniform in [0, 1): ``jitter=1`` is
    "full jitter", the default ``0.5`` is "equal jitter", ``0`` none.
    ``max_attempts`` bounds the reconnect attempts of a streak (``None``:
    forever, ``0``: never reconnect). With ``delays`` set (see
    :meth:`from_delays`), ``first_delay``, ``initial_delay`` and ``factor``
    are unused.
    """

    first_delay: float = 0.0
    initial_delay: float = 1.0
    max_delay: float = 30.0
    factor: float = 1.618
    jitter: float = 0.5
    max_attempts: int | None = None
    reset_after: float = 10.0
    is_retryable: Callable[[BaseException], bool] = default_is_retryable
    delays: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        times = (self.first_delay, self.initial_delay, self.max_delay, self.reset_after)
        if min(times) < 0 or any(d < 0 for d in self.delays or ()):
            raise ValueError("delays and reset_after must be >= 0")
        if self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("factor must be >= 1 and jitter between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError("max_attempts must be >= 0 or None")
        if self.delays is not None and self.max_attempts != 0 and not self.delays:
            raise ValueError("delays must not be empty")
        if self.delays and max(self.delays) > self.max_delay:
            raise ValueError("delays must not exceed max_delay")

    @classmethod
    def never(cls) -> ReconnectPolicy:
        """A policy that never reconnects (the first connection is still attempted)."""
        return cls(max_attempts=0)

    @classmethod
    def from_delays(
        cls, delays: Iterable[float], *, repeat: bool = False, jitter: float = 0.0
    ) -> ReconnectPolicy:
        """Wait ``delays[n - 1]`` before reconnect attempt ``n``, then give up.

        ``from_delays([0, 2, 10, 30])`` is SignalR's default
        ``withAutomaticReconnect()``. With ``repeat=True`` the last delay
        repeats forever. Change other fields with :func:`dataclasses.replace`.
        """
        values = tuple(float(d) for d in delays)
        return cls(
            delays=values,
            max_attempts=None if repeat else len(values),
            max_delay=max(values, default=0.0),
            jitter=jitter,
        )

    def base_delay(self, n: int) -> float:
        """The delay before reconnect attempt ``n`` (from 1), before jitter."""
        if self.delays is not None:
            return self.delays[min(n, len(self.delays)) - 1]
        if n <= 1:
            return min(self.first_delay, self.max_delay)
        try:
            return min(self.initial_delay * self.factor ** (n - 2), self.max_delay)
        except OverflowError:
            return self.max_delay

    def retryable(self, exc: BaseException) -> bool:
        """Apply ``is_retryable``; a ``BaseException`` that is not an ``Exception`` never is."""
        return isinstance(exc, Exception) and self.is_retryable(exc)

    def start(self, rng: random.Random | None = None) -> Backoff:
        """A fresh :class:`Backoff` following this policy."""
        return Backoff(self, rng)


class Backoff:
    """The pure state of one reconnecting client; the caller passes the time in.

    ``attempts`` counts the attempts of the current streak, successful ones
    included. ``fatal`` tells whether the last give-up was for a non-retryable
    error (rather than for ``max_attempts``).
    """

    def __init__(self, policy: ReconnectPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.attempts = 0
        self.fatal = False
        self._rng = rng if rng is not None else random.Random()
        self._retries = 0
        self._connected_at: float | None = None

    def __repr__(self) -> str:
        return f"<Backoff attempts={self.attempts} retries={self._retries}>"

    def on_failure(self, exc: BaseException, now: float) -> float | None:
        """An attempt failed: the delay before the next one, or ``None`` to give up."""
        del now  # part of the protocol, unused: failures need no timing
        self.attempts += 1
        self._connected_at = None
        return self._next_delay(exc)

    def on_connected(self, now: float) -> None:
        """An attempt succeeded at ``now``."""
        self.attempts += 1
        self._connected_at = now

    def on_lost(self, now: float, exc: BaseException | None = None) -> float | None:
        """The connection ended (``exc=None``: cleanly): the delay, or ``None``."""
        started = self._connected_at
        if started is not None and now - started >= self.policy.reset_after:
            self.reset()
        self._connected_at = None
        return self._next_delay(exc)

    def reset(self) -> None:
        """Start a new streak: the next delay is ``base_delay(1)`` again."""
        self.attempts = 0
        self._retries = 0

    def _next_delay(self, exc: BaseException | None) -> float | None:
        self.fatal = exc is not None and not self.policy.retryable(exc)
        limit = self.policy.max_attempts
        if self.fatal or (limit is not None and self._retries >= limit):
            return None
        self._retries += 1
        return self.policy.base_delay(self._retries) * (
            1.0 - self.policy.jitter * self._rng.random()
        )


class ReconnectState(enum.Enum):
    """Where a :class:`Reconnector` stands."""

    IDLE = "idle"  #: created, nothing attempted yet
    CONNECTING = "connecting"  #: an attempt is running
    CONNECTED = "connected"  #: the last attempt succeeded and was not reported lost
    WAITING = "waiting"  #: disconnected; the next attempt is due after a delay
    CLOSED = "closed"  #: gave up or closed; final


_S = ReconnectState
_TRANSITIONS: dict[ReconnectState, frozenset[ReconnectState]] = {
    _S.IDLE: frozenset({_S.CONNECTING, _S.CLOSED}),
    _S.CONNECTING: frozenset({_S.CONNECTED, _S.WAITING, _S.CLOSED}),
    _S.CONNECTED: frozenset({_S.WAITING, _S.CLOSED}),
    _S.WAITING: frozenset({_S.CONNECTING, _S.CLOSED}),
    _S.CLOSED: frozenset(),
}


@dataclasses.dataclass(frozen=True)
class ReconnectStatistics:
    """A snapshot of a :class:`Reconnector`."""

    state: ReconnectState
    attempts: int  #: attempts in the current streak
    connections: int  #: successful attempts so far
    last_error: BaseException | None  #: the last failure or loss error
    delay: float | None  #: the pending delay (``None`` when no wait is scheduled)


class Reconnector(Generic[T]):
    """Drive a :class:`Backoff` with anyio: the engine of ``async for ws in connect(url)``.

    Call :meth:`next_attempt` for each connection and :meth:`lost` when one
    ends. ``on_state_change(state)`` is called on each change; it must not
    block, and what it raises is logged. Retries are logged at INFO and giving
    up at WARNING on ``logger``. ``clock`` gives the time in seconds.
    """

    def __init__(
        self,
        policy: ReconnectPolicy | None = None,
        *,
        logger: logging.Logger | None = None,
        on_state_change: Callable[[ReconnectState], object] | None = None,
        clock: Callable[[], float] = anyio.current_time,
        rng: random.Random | None = None,
        _sleep: Callable[[float], Awaitable[None]] = anyio.sleep,  # for tests
    ) -> None:
        self.policy = policy if policy is not None else ReconnectPolicy()
        self._backoff = self.policy.start(rng)
        self._logger = logger if logger is not None else _LOGGER
        self._on_state_change = on_state_change
        self._clock = clock
        self._sleep = _sleep
        self._state = ReconnectState.IDLE
        self._due: float | None = None
        self._delay: float | None = None
        self._last_error: BaseException | None = None
        self._pending: ReconnectGaveUp | None = None
        self._connections = 0
        self._busy = False
        self._wait_scope: anyio.CancelScope | None = None

    def __repr__(self) -> str:
        return (
            f"<Reconnector state={self._state.value} "
            f"attempts={self._backoff.attempts} delay={self._delay}>"
        )

    @property
    def state(self) -> ReconnectState:
        """Where the reconnector stands now."""
        return self._state

    def statistics(self) -> ReconnectStatistics:
        """A snapshot: state, attempts of the streak, connections, last error, delay."""
        return ReconnectStatistics(
            self._state, self._backoff.attempts, self._connections, self._last_error, self._delay
        )

    async def next_attempt(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Wait the pending delay, then call ``attempt`` until it succeeds.

        A non-retryable error propagates unchanged; when ``max_attempts`` runs
        out, :class:`~anywire.errors.ReconnectGaveUp` is raised from the last
        error. Raises ``anyio.ClosedResourceError`` once closed. Cancelling the
        caller stops the wait at once; calling again waits only what is left.
        """
        if self._busy:
            raise ConcurrencyError("another task is already in next_attempt()")
        self._busy = True
        try:
            return await self._attempt_until_connected(attempt)
        finally:
            self._busy = False
            if self._state is ReconnectState.CONNECTING:  # interrupted mid-attempt
                self._set_state(ReconnectState.WAITING)

    def lost(self, exc: BaseException | None = None) -> float | None:
        """The connection ended, with ``exc`` or cleanly (``None``).

        Returns the delay before the next attempt, or ``None`` when the policy
        gives up: then the next :meth:`next_attempt` raises
        :class:`~anywire.errors.ReconnectGaveUp` from ``exc``. Does nothing
        once closed.
        """
        if self._state is ReconnectState.CLOSED:
            return None
        if self._state is not ReconnectState.CONNECTED:
            raise LocalProtocolError(f"lost() called while {self._state.value}")
        self._last_error = exc
        delay = self._backoff.on_lost(self._clock(), exc)
        if delay is None:
            what = "with a non-retryable error" if self._backoff.fatal else f"and {self._limit()}"
            self._pending = self._give_up(exc, f"connection lost {what}")
        else:
            self._schedule(delay, "connection lost", exc)
        return delay

    def close(self) -> None:
        """Stop reconnecting; a pending wait in :meth:`next_attempt` ends at once."""
        self._set_state(ReconnectState.CLOSED)
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    async def _attempt_until_connected(self, attempt: Callable[[], Awaitable[T]]) -> T:
        while True:
            await self._wait()
            self._set_state(ReconnectState.CONNECTING)
            try:
                result = await attempt()
            except Exception as exc:
                error = self._failed(exc)
                if error is exc:
                    raise
                if error is not None:
                    raise error from exc
            else:
                self._connected()
                return result

    async def _wait(self) -> None:
        self._raise_if_closed()
        if self._due is not None:
            self._wait_scope = anyio.CancelScope()
            try:
                with self._wait_scope:
                    await self._sleep(max(0.0, self._due - self._clock()))
            finally:
                self._wait_scope = None
            self._raise_if_closed()
        self._due = self._delay = None

    def _raise_if_closed(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            raise pending
        if self._state is ReconnectState.CLOSED:
            raise anyio.ClosedResourceError

    def _failed(self, exc: Exception) -> BaseException | None:
        self._last_error = exc
        delay = self._backoff.on_failure(exc, self._clock())
        if delay is not None:
            self._schedule(delay, f"attempt {self._backoff.attempts} failed", exc)
            return None
        if self._backoff.fatal:
            self._set_state(ReconnectState.CLOSED)
            return exc
        return self._give_up(exc, f"attempt {self._backoff.attempts} failed and {self._limit()}")

    def _connected(self) -> None:
        self._connections += 1
        self._backoff.on_connected(self._clock())
        self._set_state(ReconnectState.CONNECTED)

    def _schedule(self, delay: float, what: str, exc: BaseException | None) -> None:
        self._delay = delay
        self._due = self._clock() + delay
        self._set_state(ReconnectState.WAITING)
        self._logger.info("%s; reconnecting in %.3g s: %s", what, delay, _describe(exc))

    def _limit(self) -> str:
        return f"max_attempts={self.policy.max_attempts} is reached"

    def _give_up(self, cause: BaseException | None, what: str) -> ReconnectGaveUp:
        message = f"{what}; not reconnecting: {_describe(cause)}"
        self._logger.warning("%s", message)
        self._set_state(ReconnectState.CLOSED)
        error = ReconnectGaveUp(message, attempts=self._backoff.attempts)
        error.__cause__ = cause
        return error

    def _set_state(self, state: ReconnectState) -> None:
        old = self._state
        if old is state or old is ReconnectState.CLOSED:
            return
        assert state in _TRANSITIONS[old], f"{old} -> {state}"
        self._state = state
        if self._on_state_change is not None:
            try:
                self._on_state_change(state)
            except Exception:
                self._logger.exception("error in on_state_change(%s)", state)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "closed cleanly"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def retry(
    attempt: Callable[[], Awaitable[T]],
    policy: ReconnectPolicy | None = None,
    *,
    logger: logging.Logger | None = None,
) -> T:
    """Call ``attempt`` until it succeeds, as :meth:`Reconnector.next_attempt` does."""
    reconnector: Reconnector[T] = Reconnector(policy, logger=logger)
    return await reconnector.next_attempt(attempt)
