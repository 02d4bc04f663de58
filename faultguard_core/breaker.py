"""The circuit breaker: closed, open, half-open and the manual states.

A call asks for a `Permit` with `acquire()`, runs, and reports its `Outcome`
with `record(permit, outcome)`. Every permit carries the breaker's generation,
which changes on every state transition, so a call that started before a
transition cannot move the breaker afterwards. Each permit counts once: a
second `record` of the same permit is ignored.

The breaker does no I/O and never awaits; time comes from an injected clock.
A threading lock keeps its counters consistent when threads share it. Events
(`StateChange`, `CallRejected`, `CallRecorded`) are queued under the lock and
delivered to the listener after it is released, in the order they happened.
docs/breaker.md states every rule.
"""

from __future__ import annotations

import enum
import itertools
import logging
import math
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faultguard_core._windows import CountWindow, TimeWindow, Window
from faultguard_core.classification import Classifier, Outcome
from faultguard_core.clock import Clock, SystemClock
from faultguard_core.errors import CircuitOpenError
from faultguard_core.settings import BreakerSettings

logger = logging.getLogger("faultguard")

__all__ = [
    "BreakerEvent",
    "BreakerListener",
    "BreakerSnapshot",
    "BreakerState",
    "CallRecorded",
    "CallRejected",
    "CircuitBreaker",
    "Outcome",
    "Permit",
    "StateChange",
    "StateListener",
]


class BreakerState(enum.Enum):
    """A breaker state; `gauge_value` is the number the state gauge exports.

    The last four are manual states that only an operator (or Python code)
    enters, through `force_open`, `force_close`, `disable` and
    `enable_metrics_only`; `reset` leaves them.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    FORCED_CLOSED = "forced_closed"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"

    @property
    def gauge_value(self) -> int:
        return _GAUGE_VALUES[self]

    @property
    def manual(self) -> bool:
        """True for the states that only a manual action enters."""
        return self in _MANUAL_STATES


_GAUGE_VALUES = {
    BreakerState.CLOSED: 0,
    BreakerState.OPEN: 1,
    BreakerState.HALF_OPEN: 2,
    BreakerState.FORCED_OPEN: 3,
    BreakerState.FORCED_CLOSED: 4,
    BreakerState.DISABLED: 5,
    BreakerState.METRICS_ONLY: 6,
}

_MANUAL_STATES = frozenset(
    {
        BreakerState.FORCED_OPEN,
        BreakerState.FORCED_CLOSED,
        BreakerState.DISABLED,
        BreakerState.METRICS_ONLY,
    }
)

# States that admit every call and count it like closed (but never trip).
_COUNTING_STATES = frozenset(
    {BreakerState.CLOSED, BreakerState.FORCED_CLOSED, BreakerState.METRICS_ONLY}
)


@dataclass(frozen=True, slots=True)
class Permit:
    """Admission of one call; pass it back to `CircuitBreaker.record`.

    `number` identifies the permit within its breaker and `acquired_at` is
    the breaker clock's monotonic time of admission.
    """

    generation: int
    probe: bool
    number: int = 0
    acquired_at: float = 0.0


@dataclass(frozen=True, slots=True)
class StateChange:
    """One transition, delivered to the listener after the lock is released.

    `reason` names the rule that caused it: `consecutive_failures`,
    `failure_rate`, `slow_call_rate`, `open_period_ended`, `probe_failed`,
    `probe_slow`, `probe_timed_out`, `probes_succeeded`, or the manual action
    (`force_open`, `force_close`, `disable`, `metrics_only`, `reset`).
    """

    name: str
    old: BreakerState
    new: BreakerState
    at: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CallRejected:
    """A call was rejected; `retry_after` is as in `CircuitOpenError`."""

    name: str
    state: BreakerState
    retry_after: float
    at: float


@dataclass(frozen=True, slots=True)
class CallRecorded:
    """A recorded call result.

    `state` is the state the result was counted in. `tripped_rule` names the
    trip rule that this call made true: in `closed` the breaker opens right
    after this event, in `metrics_only` it only reports what would have
    happened. Results that the breaker ignores (an older generation, a
    second record, the `disabled` state) produce no event.
    """

    name: str
    outcome: Outcome
    duration: float
    slow: bool
    state: BreakerState
    at: float
    tripped_rule: str | None = None


BreakerEvent = StateChange | CallRejected | CallRecorded
BreakerListener = Callable[[BreakerEvent], None]
StateListener = BreakerListener
"""The listener type under its earlier name."""


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A consistent view of a breaker for the API and metrics.

    The window counts cover the calls counted since the last state change
    that are still inside the window. `trips` counts openings since the
    breaker last closed; it sets how long the next open period lasts.
    """

    name: str
    state: BreakerState
    consecutive_failures: int
    half_open_in_flight: int
    half_open_successes: int
    open_remaining: float
    """Seconds until the breaker turns half-open; 0.0 unless open."""
    window_calls: int = 0
    window_failures: int = 0
    window_slow_calls: int = 0
    trips: int = 0
    shadow_trips: int = 0
    """Trips a `metrics_only` breaker would have made."""
    in_flight: int = 0


class CircuitBreaker:
    """A breaker with consecutive, failure-rate and slow-call-rate trip rules.

    - Closed: every call is admitted. The breaker opens when any rule in
      `trip_policies` holds; docs/breaker.md gives each rule.
    - Open: every call is rejected with `CircuitOpenError` until the open
      period ends, then the breaker turns half-open. The transition happens
      on the first read or acquire after that time, so no reader ever sees a
      stale open state. The period grows by `open_duration_multiplier` per
      trip without a close, up to `max_open_duration`.
    - Half-open: at most `half_open_max_calls` probes run at once; others are
      rejected at once. `success_threshold` successes close it, any failure
      reopens it, an excluded probe gives its slot back, and a probe older
      than `half_open_timeout` reopens it.
    - Manual states: `forced_open` rejects every call; `forced_closed` and
      `metrics_only` admit and count every call but never open; `disabled`
      admits every call and counts nothing.

    Options are `BreakerSettings` fields; they override `settings`.
    Invalid options raise pydantic's `ValidationError`, a `ValueError`.
    """

    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        *,
        clock: Clock | None = None,
        listener: BreakerListener | None = None,
        rng: random.Random | None = None,
        **options: Any,
    ) -> None:
        base = settings or BreakerSettings()
        if options:
            base = BreakerSettings.model_validate({**base.model_dump(), **options})
        self.name = name
        self._clock = clock or SystemClock()
        self._listener = listener
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._dispatching = threading.Lock()
        self._pending: deque[BreakerEvent] = deque()
        self._numbers = itertools.count(1)

        self._state = BreakerState.CLOSED
        self._generation = 0
        self._failures = 0
        self._opened_at = 0.0
        self._open_until = 0.0
        self._trips = 0
        self._shadow_trips = 0
        self._retry_hint_until = 0.0
        self._probes: dict[int, float] = {}
        self._probe_successes = 0
        self._in_flight: dict[int, float] = {}
        self._apply_settings(base)
        self._window: Window = self._new_window()

    # Settings.

    @property
    def settings(self) -> BreakerSettings:
        """The settings in force; replace them with `reconfigure`."""
        return self._settings

    @property
    def max_failures(self) -> int:
        return self._settings.max_failures

    @property
    def open_duration(self) -> float:
        return self._settings.open_duration

    @property
    def half_open_max_calls(self) -> int:
        return self._settings.half_open_max_calls

    @property
    def classifier(self) -> Classifier:
        """The status and error classification of this breaker's settings."""
        return self._classifier

    def _apply_settings(self, settings: BreakerSettings) -> None:
        self._settings = settings
        self._classifier = Classifier.from_settings(settings)
        policies = set(settings.trip_policies)
        self._consecutive_rule = "consecutive" in policies
        self._failure_rate_rule = "failure_rate" in policies
        self._slow_rule = "slow_call_rate" in policies

    def _new_window(self) -> Window:
        settings = self._settings
        if settings.window_type == "time":
            return TimeWindow(settings.window_duration, settings.window_buckets)
        return CountWindow(settings.window_size)

    def reconfigure(self, settings: BreakerSettings) -> None:
        """Apply new settings, keeping the state, the counts and the open period.

        A count window that changes size keeps its newest calls; a window
        that changes type, or a time window that changes its duration or
        buckets, starts empty. New thresholds apply from the next recorded
        call, and an open period already running keeps its end.
        """
        with self._lock:
            old = self._settings
            self._apply_settings(settings)
            same_kind = old.window_type == settings.window_type and (
                settings.window_type == "count"
                or (
                    old.window_duration == settings.window_duration
                    and old.window_buckets == settings.window_buckets
                )
            )
            if not same_kind:
                self._window = self._new_window()
            elif isinstance(self._window, CountWindow):
                self._window.resize(settings.window_size)

    # Reading.

    @property
    def state(self) -> BreakerState:
        """The current state, after any due time-based transition."""
        return self.snapshot().state

    def snapshot(self) -> BreakerSnapshot:
        """Return the state and counts, applying a due time-based transition."""
        with self._lock:
            now = self._clock.monotonic()
            self._refresh(now)
            totals = self._window.totals(now)
            snapshot = BreakerSnapshot(
                name=self.name,
                state=self._state,
                consecutive_failures=self._failures,
                half_open_in_flight=len(self._probes),
                half_open_successes=self._probe_successes,
                open_remaining=self._open_remaining(now),
                window_calls=totals.calls,
                window_failures=totals.failures,
                window_slow_calls=totals.slow,
                trips=self._trips,
                shadow_trips=self._shadow_trips,
                in_flight=len(self._in_flight),
            )
        self._dispatch()
        return snapshot

    def is_idle(self) -> bool:
        """Return True if closed with no admitted call still running."""
        with self._lock:
            return self._state is BreakerState.CLOSED and not self._in_flight

    # Calls.

    def acquire(self) -> Permit:
        """Admit one call or raise `CircuitOpenError`.

        `retry_after` of the error is the time left in the open period, 0.0
        when half-open with every probe slot taken, and `math.inf` when
        forced open. A fresh exception object is raised for every rejection,
        so no traceback grows across raises.
        """
        with self._lock:
            now = self._clock.monotonic()
            self._refresh(now)
            state = self._state
            number = next(self._numbers)
            permit: Permit | None = None
            if state is BreakerState.HALF_OPEN:
                if len(self._probes) < self._settings.half_open_max_calls:
                    self._probes[number] = now
                    permit = Permit(self._generation, True, number, now)
            elif state not in (BreakerState.OPEN, BreakerState.FORCED_OPEN):
                permit = Permit(self._generation, False, number, now)

            if permit is not None:
                self._in_flight[number] = now
                retry_after = 0.0
            elif state is BreakerState.FORCED_OPEN:
                retry_after = math.inf
            else:
                retry_after = self._open_remaining(now)
            if permit is None:
                self._pending.append(
                    CallRejected(self.name, state, retry_after, self._clock.wall())
                )
        self._dispatch()

        if permit is None:
            raise CircuitOpenError(self.name, state.value, retry_after)
        return permit

    def record(
        self,
        permit: Permit,
        outcome: Outcome,
        *,
        duration: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Count the outcome of an admitted call.

        `duration` is the call's time in seconds; without it the breaker
        measures from `acquire` with its clock. `retry_after` is the
        upstream's `Retry-After` in seconds on a failed call; it may lengthen
        the next open period up to `max_open_duration`.

        Ignored: a permit recorded before, and a permit of an older
        generation, because the state it was admitted under no longer
        exists.
        """
        with self._lock:
            now = self._clock.monotonic()
            started = self._in_flight.pop(permit.number, None)
            self._refresh(now)
            if started is not None and permit.generation == self._generation:
                if duration is None:
                    duration = max(0.0, now - started)
                self._apply(permit, outcome, duration, retry_after, now)
        self._dispatch()

    def _apply(
        self,
        permit: Permit,
        outcome: Outcome,
        duration: float,
        retry_after: float | None,
        now: float,
    ) -> None:
        state = self._state
        if state is BreakerState.DISABLED:
            return

        counted = outcome is not Outcome.EXCLUDED
        failure = outcome is Outcome.FAILURE
        slow = counted and duration > self._settings.slow_call_duration
        if failure and retry_after is not None and retry_after > 0:
            self._retry_hint_until = max(self._retry_hint_until, now + retry_after)
        wall = self._clock.wall()

        if state is BreakerState.HALF_OPEN:
            self._apply_probe(permit, outcome, duration, slow, now, wall)
            return

        rule: str | None = None
        if counted:
            if failure:
                self._failures += 1
            else:
                self._failures = 0
            self._window.add(now, failure=failure, slow=slow)
            if state is not BreakerState.FORCED_CLOSED:
                rule = self._tripped_rule(now)

        self._pending.append(
            CallRecorded(self.name, outcome, duration, slow, state, wall, rule)
        )
        if rule is None:
            return
        if state is BreakerState.CLOSED:
            self._transition(BreakerState.OPEN, now, rule)
        else:
            # metrics_only: report the trip, then start counting afresh as a
            # real trip would, so every shadow trip is reported once.
            self._shadow_trips += 1
            self._failures = 0
            self._window.clear()

    def _apply_probe(
        self,
        permit: Permit,
        outcome: Outcome,
        duration: float,
        slow: bool,
        now: float,
        wall: float,
    ) -> None:
        # Only probes hold permits of a half-open generation.
        self._probes.pop(permit.number, None)
        reason: str | None = None
        if outcome is Outcome.FAILURE:
            reason = "probe_failed"
        elif outcome is Outcome.SUCCESS and slow and self._slow_rule:
            reason = "probe_slow"
        self._pending.append(
            CallRecorded(
                self.name, outcome, duration, slow, BreakerState.HALF_OPEN, wall, reason
            )
        )
        if reason is not None:
            self._transition(BreakerState.OPEN, now, reason)
        elif outcome is Outcome.SUCCESS:
            self._probe_successes += 1
            if self._probe_successes >= self._settings.success_threshold:
                self._transition(BreakerState.CLOSED, now, "probes_succeeded")

    def _tripped_rule(self, now: float) -> str | None:
        settings = self._settings
        if self._consecutive_rule and self._failures >= settings.max_failures:
            return "consecutive_failures"
        if not (self._failure_rate_rule or self._slow_rule):
            return None

        totals = self._window.totals(now)
        if totals.calls < settings.min_calls:
            return None
        if (
            self._failure_rate_rule
            and totals.failures / totals.calls >= settings.failure_rate_threshold
        ):
            return "failure_rate"
        if (
            self._slow_rule
            and totals.slow / totals.calls >= settings.slow_call_rate_threshold
        ):
            return "slow_call_rate"
        return None

    # Manual control.

    def force_open(self) -> None:
        """Reject every call until `reset` or another manual action."""
        self._manual(BreakerState.FORCED_OPEN, "force_open")

    def force_close(self) -> None:
        """Admit and count every call, never opening, until `reset`."""
        self._manual(BreakerState.FORCED_CLOSED, "force_close")

    def disable(self) -> None:
        """Admit every call and count nothing until `reset`."""
        self._manual(BreakerState.DISABLED, "disable")

    def enable_metrics_only(self) -> None:
        """Admit every call; count it and report trips without opening."""
        self._manual(BreakerState.METRICS_ONLY, "metrics_only")

    def reset(self) -> None:
        """Return to closed with empty counts and the first open period.

        A reset of a closed breaker clears its counts without a state change
        event.
        """
        with self._lock:
            now = self._clock.monotonic()
            if self._state is BreakerState.CLOSED:
                self._clear_counts()
                self._trips = 0
            else:
                self._transition(BreakerState.CLOSED, now, "reset")
        self._dispatch()

    def _manual(self, state: BreakerState, reason: str) -> None:
        with self._lock:
            if self._state is not state:
                self._transition(state, self._clock.monotonic(), reason)
        self._dispatch()

    # Transitions.

    def _refresh(self, now: float) -> None:
        if self._state is BreakerState.OPEN and now >= self._open_until:
            self._transition(BreakerState.HALF_OPEN, now, "open_period_ended")
        elif self._state is BreakerState.HALF_OPEN and self._probes:
            timeout = self._settings.half_open_timeout
            if timeout > 0 and min(self._probes.values()) + timeout <= now:
                self._transition(BreakerState.OPEN, now, "probe_timed_out")

    def _open_remaining(self, now: float) -> float:
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._open_until - now)

    def _open_period(self, now: float) -> float:
        """Return the length of the open period that starts now."""
        settings = self._settings
        cap = settings.max_open_duration
        period = settings.open_duration
        growth = settings.open_duration_multiplier
        exponent = self._trips - 1
        if exponent > 0 and growth > 1.0 and period > 0:
            # Compare logarithms, so a long outage never overflows a float.
            if exponent * math.log(growth) >= math.log(cap / period):
                period = cap
            else:
                period = period * growth**exponent
        if settings.jitter > 0:
            period *= 1.0 + self._rng.uniform(-settings.jitter, settings.jitter)
        period = min(period, cap)

        hint = self._retry_hint_until - now
        if hint > period:
            period = min(hint, cap)
        return period

    def _clear_counts(self) -> None:
        self._failures = 0
        self._probes.clear()
        self._probe_successes = 0
        self._retry_hint_until = 0.0
        self._window.clear()

    def _transition(self, new: BreakerState, now: float, reason: str) -> None:
        old = self._state
        self._state = new
        self._generation += 1
        if new is BreakerState.OPEN:
            self._trips += 1
            self._opened_at = now
            self._open_until = now + self._open_period(now)
        elif new in _COUNTING_STATES or new is BreakerState.DISABLED:
            self._trips = 0
        self._clear_counts()
        self._pending.append(
            StateChange(self.name, old, new, self._clock.wall(), reason)
        )
        if new is BreakerState.OPEN and self._open_until <= now:
            # A zero open period: half-open at once, as one more transition.
            self._refresh(now)

    # Events.

    def _dispatch(self) -> None:
        """Deliver queued events in order, outside the state lock.

        One thread delivers at a time. A listener that reads the breaker
        queues its own events, and the delivering thread sends them after the
        listener returns, so the order always matches the order of the
        transitions. An exception from the listener is logged and dropped.
        """
        while True:
            if not self._dispatching.acquire(blocking=False):
                return
            try:
                while True:
                    with self._lock:
                        if not self._pending:
                            break
                        event = self._pending.popleft()
                    self._deliver(event)
            finally:
                self._dispatching.release()
            with self._lock:
                if not self._pending:
                    return

    def _deliver(self, event: BreakerEvent) -> None:
        if self._listener is None:
            return
        try:
            self._listener(event)
        except Exception:
            logger.exception(
                "breaker_listener_failed",
                extra={"service": self.name, "event": type(event).__name__},
            )
