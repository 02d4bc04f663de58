"""The circuit breaker: closed, open and half-open.

A call asks for a `Permit` with `acquire()`, runs, and reports its `Outcome`
with `record(permit, outcome)`. Every permit carries the breaker's generation,
which changes on every state transition, so a call that started before a
transition cannot move the breaker afterwards.

The breaker does no I/O and never awaits; time comes from an injected clock.
A threading lock keeps its counters consistent when threads share it.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass

from faultguard_core.clock import Clock, SystemClock
from faultguard_core.errors import CircuitOpenError


class BreakerState(enum.Enum):
    """A breaker state; `gauge_value` is the number the state gauge exports."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def gauge_value(self) -> int:
        return _GAUGE_VALUES[self]


_GAUGE_VALUES = {
    BreakerState.CLOSED: 0,
    BreakerState.OPEN: 1,
    BreakerState.HALF_OPEN: 2,
}


class Outcome(enum.Enum):
    """How a finished call counts for the breaker.

    `EXCLUDED` calls (cancelled by the caller, for example) count neither as a
    success nor as a failure; in half-open they give their probe slot back.
    """

    SUCCESS = "success"
    FAILURE = "failure"
    EXCLUDED = "excluded"


@dataclass(frozen=True, slots=True)
class Permit:
    """Admission of one call; pass it back to `CircuitBreaker.record`."""

    generation: int
    probe: bool


@dataclass(frozen=True, slots=True)
class StateChange:
    """One transition, delivered to the listener after the lock is released."""

    name: str
    old: BreakerState
    new: BreakerState
    at: float


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A consistent view of a breaker for the API and metrics."""

    name: str
    state: BreakerState
    consecutive_failures: int
    half_open_in_flight: int
    half_open_successes: int
    open_remaining: float
    """Seconds until the breaker turns half-open; 0.0 unless open."""


StateListener = Callable[[StateChange], None]


class CircuitBreaker:
    """A consecutive-failures breaker with a bounded half-open probe budget.

    - Closed: every call is admitted; `max_failures` consecutive failures open
      it, and a success resets the count.
    - Open: every call is rejected with `CircuitOpenError` for
      `open_duration` seconds, then the breaker turns half-open. The
      transition happens on the first read or acquire after that time, so no
      reader ever sees a stale open state.
    - Half-open: at most `half_open_max_calls` probes run at once. That many
      successes close it; any failure reopens it for a fresh open period.
    """

    def __init__(
        self,
        name: str,
        *,
        max_failures: int = 5,
        open_duration: float = 30.0,
        half_open_max_calls: int = 1,
        clock: Clock | None = None,
        listener: StateListener | None = None,
    ) -> None:
        if max_failures < 1:
            raise ValueError(f"max_failures must be >= 1, got {max_failures}")
        if open_duration < 0:
            raise ValueError(f"open_duration must be >= 0, got {open_duration}")
        if half_open_max_calls < 1:
            raise ValueError(
                f"half_open_max_calls must be >= 1, got {half_open_max_calls}"
            )
        self.name = name
        self.max_failures = max_failures
        self.open_duration = open_duration
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock or SystemClock()
        self._listener = listener
        self._lock = threading.Lock()

        self._state = BreakerState.CLOSED
        self._generation = 0
        self._failures = 0
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0

    @property
    def state(self) -> BreakerState:
        """The current state, after any due open-to-half-open transition."""
        return self.snapshot().state

    def snapshot(self) -> BreakerSnapshot:
        """Return the state and counts, applying a due half-open transition."""
        with self._lock:
            change = self._refresh()
            snapshot = BreakerSnapshot(
                name=self.name,
                state=self._state,
                consecutive_failures=self._failures,
                half_open_in_flight=self._probes_in_flight,
                half_open_successes=self._probe_successes,
                open_remaining=self._open_remaining(),
            )
        self._notify(change)
        return snapshot

    def acquire(self) -> Permit:
        """Admit one call or raise `CircuitOpenError`.

        A fresh exception object is raised for every rejection, so no
        traceback grows across raises.
        """
        with self._lock:
            change = self._refresh()
            state = self._state
            if state is BreakerState.CLOSED:
                permit: Permit | None = Permit(self._generation, probe=False)
            elif (
                state is BreakerState.HALF_OPEN
                and self._probes_in_flight < self.half_open_max_calls
            ):
                self._probes_in_flight += 1
                permit = Permit(self._generation, probe=True)
            else:
                permit = None
            retry_after = self._open_remaining()
        self._notify(change)
        if permit is None:
            raise CircuitOpenError(self.name, state.value, retry_after)
        return permit

    def record(self, permit: Permit, outcome: Outcome) -> None:
        """Count the outcome of an admitted call.

        Results from a permit of an older generation are ignored: the state
        they were admitted under no longer exists.
        """
        with self._lock:
            if permit.generation != self._generation:
                return
            change = self._apply(permit, outcome)
        self._notify(change)

    def _apply(self, permit: Permit, outcome: Outcome) -> StateChange | None:
        if self._state is BreakerState.CLOSED:
            if outcome is Outcome.SUCCESS:
                self._failures = 0
            elif outcome is Outcome.FAILURE:
                self._failures += 1
                if self._failures >= self.max_failures:
                    return self._transition(BreakerState.OPEN)
            return None

        # Half-open: only probes hold permits of this generation.
        if not permit.probe:
            return None
        self._probes_in_flight -= 1
        if outcome is Outcome.FAILURE:
            return self._transition(BreakerState.OPEN)
        if outcome is Outcome.SUCCESS:
            self._probe_successes += 1
            if self._probe_successes >= self.half_open_max_calls:
                return self._transition(BreakerState.CLOSED)
        return None

    def _refresh(self) -> StateChange | None:
        if self._state is BreakerState.OPEN and self._open_remaining() <= 0.0:
            return self._transition(BreakerState.HALF_OPEN)
        return None

    def _open_remaining(self) -> float:
        if self._state is not BreakerState.OPEN:
            return 0.0
        elapsed = self._clock.monotonic() - self._opened_at
        return max(0.0, self.open_duration - elapsed)

    def _transition(self, new: BreakerState) -> StateChange:
        old = self._state
        self._state = new
        self._generation += 1
        self._failures = 0
        self._probes_in_flight = 0
        self._probe_successes = 0
        if new is BreakerState.OPEN:
            self._opened_at = self._clock.monotonic()
        return StateChange(self.name, old, new, self._clock.wall())

    def _notify(self, change: StateChange | None) -> None:
        if change is not None and self._listener is not None:
            self._listener(change)
