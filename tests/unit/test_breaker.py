"""Unit tests of `CircuitBreaker`, driven by a `FakeClock`.

The last part is a Hypothesis state machine that runs random sequences of
acquires, recorded outcomes and clock advances against a reference model.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from faultguard_core.breaker import (
    BreakerEvent,
    BreakerState,
    CircuitBreaker,
    Outcome,
    Permit,
    StateChange,
)
from faultguard_core.clock import FakeClock
from faultguard_core.errors import CircuitOpenError, FaultguardError

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN


class Harness:
    """A breaker on a fake clock, with every event it emitted.

    The open period does not grow unless a test sets
    `open_duration_multiplier`, so open periods are plain `open_duration`.
    """

    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock()
        self.events: list[BreakerEvent] = []
        options.setdefault("max_failures", 3)
        options.setdefault("open_duration", 10.0)
        options.setdefault("half_open_max_calls", 1)
        options.setdefault("open_duration_multiplier", 1.0)
        self.breaker = CircuitBreaker(
            "payments", clock=self.clock, listener=self.events.append, **options
        )

    @property
    def changes(self) -> list[StateChange]:
        return [event for event in self.events if isinstance(event, StateChange)]

    def transitions(self) -> list[tuple[BreakerState, BreakerState]]:
        return [(change.old, change.new) for change in self.changes]

    def record(self, outcome: Outcome, count: int = 1) -> None:
        """Acquire and record `count` calls with the same outcome."""
        for _ in range(count):
            self.breaker.record(self.breaker.acquire(), outcome)

    def open(self) -> None:
        self.record(Outcome.FAILURE, self.breaker.max_failures)
        assert self.breaker.state is OPEN

    def half_open(self) -> None:
        self.open()
        self.clock.advance(self.breaker.open_duration)
        assert self.breaker.state is HALF_OPEN

    def rejection(self) -> CircuitOpenError:
        with pytest.raises(CircuitOpenError) as info:
            self.breaker.acquire()
        return info.value


# Closed.


def test_breaker_starts_closed() -> None:
    harness = Harness()

    snapshot = harness.breaker.snapshot()
    permit = harness.breaker.acquire()

    assert snapshot.state is CLOSED
    assert snapshot.name == "payments"
    assert snapshot.consecutive_failures == 0
    assert snapshot.half_open_in_flight == 0
    assert snapshot.half_open_successes == 0
    assert snapshot.open_remaining == 0.0
    assert permit.probe is False
    assert harness.changes == []


def test_closed_opens_at_max_failures() -> None:
    harness = Harness(max_failures=3)

    harness.record(Outcome.FAILURE, 2)

    assert harness.breaker.state is CLOSED
    assert harness.breaker.snapshot().consecutive_failures == 2

    harness.record(Outcome.FAILURE)

    assert harness.breaker.state is OPEN
    assert harness.transitions() == [(CLOSED, OPEN)]


def test_closed_max_failures_one() -> None:
    harness = Harness(max_failures=1)

    harness.record(Outcome.FAILURE)

    assert harness.breaker.state is OPEN


def test_closed_success_resets_count() -> None:
    harness = Harness(max_failures=3)

    harness.record(Outcome.FAILURE, 2)
    harness.record(Outcome.SUCCESS)

    assert harness.breaker.snapshot().consecutive_failures == 0

    harness.record(Outcome.FAILURE, 2)

    assert harness.breaker.state is CLOSED
    assert harness.breaker.snapshot().consecutive_failures == 2


def test_closed_excluded_counts_nothing() -> None:
    harness = Harness(max_failures=3)

    harness.record(Outcome.FAILURE, 2)
    harness.record(Outcome.EXCLUDED, 5)

    assert harness.breaker.state is CLOSED
    assert harness.breaker.snapshot().consecutive_failures == 2

    harness.record(Outcome.FAILURE)

    assert harness.breaker.state is OPEN


def test_closed_concurrent_permits_all_count() -> None:
    harness = Harness(max_failures=3)
    permits = [harness.breaker.acquire() for _ in range(3)]

    for permit in permits:
        harness.breaker.record(permit, Outcome.FAILURE)

    assert harness.breaker.state is OPEN


# Open.


def test_open_rejects_with_circuit_open_error() -> None:
    harness = Harness(open_duration=10.0)
    harness.open()

    error = harness.rejection()

    assert isinstance(error, FaultguardError)
    assert error.name == "payments"
    assert error.state == "open"
    assert error.retry_after == 10.0


def test_open_retry_after_counts_down() -> None:
    harness = Harness(open_duration=10.0)
    harness.open()

    harness.clock.advance(4.0)
    first = harness.rejection()
    harness.clock.advance(5.5)
    second = harness.rejection()

    assert first.retry_after == 6.0
    assert second.retry_after == 0.5
    assert harness.breaker.snapshot().open_remaining == 0.5


def test_open_raises_fresh_error_each_time() -> None:
    harness = Harness()
    harness.open()

    first = harness.rejection()
    second = harness.rejection()

    assert first is not second
    assert second.__context__ is None


def test_open_stays_open_before_duration() -> None:
    harness = Harness(open_duration=10.0)
    harness.open()

    harness.clock.advance(9.5)

    assert harness.breaker.state is OPEN
    assert harness.transitions() == [(CLOSED, OPEN)]


def test_open_read_turns_half_open() -> None:
    harness = Harness(open_duration=10.0)
    harness.open()

    harness.clock.advance(10.0)
    snapshot = harness.breaker.snapshot()

    assert snapshot.state is HALF_OPEN
    assert snapshot.open_remaining == 0.0
    assert harness.transitions() == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_open_acquire_turns_half_open() -> None:
    harness = Harness(open_duration=10.0)
    harness.open()

    harness.clock.advance(12.0)
    permit = harness.breaker.acquire()

    assert permit.probe is True
    assert harness.transitions() == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_open_zero_duration_half_open_at_once() -> None:
    harness = Harness(open_duration=0.0)

    harness.record(Outcome.FAILURE, 3)

    assert harness.breaker.state is HALF_OPEN
    assert harness.transitions() == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


# Half-open.


def test_half_open_limits_concurrent_probes() -> None:
    harness = Harness(half_open_max_calls=2)
    harness.half_open()

    probes = [harness.breaker.acquire() for _ in range(2)]
    error = harness.rejection()

    assert [probe.probe for probe in probes] == [True, True]
    assert error.state == "half_open"
    assert error.retry_after == 0.0
    assert harness.breaker.snapshot().half_open_in_flight == 2


def test_half_open_successes_close() -> None:
    harness = Harness(half_open_max_calls=2)
    harness.half_open()
    first = harness.breaker.acquire()
    second = harness.breaker.acquire()

    harness.breaker.record(first, Outcome.SUCCESS)

    assert harness.breaker.state is HALF_OPEN
    assert harness.breaker.snapshot().half_open_successes == 1

    harness.breaker.record(second, Outcome.SUCCESS)

    assert harness.breaker.state is CLOSED
    assert harness.breaker.snapshot().consecutive_failures == 0
    assert harness.breaker.acquire().probe is False


def test_half_open_success_frees_slot() -> None:
    harness = Harness(half_open_max_calls=2)
    harness.half_open()
    first = harness.breaker.acquire()
    harness.breaker.acquire()

    harness.breaker.record(first, Outcome.SUCCESS)
    third = harness.breaker.acquire()

    assert third.probe is True
    assert harness.breaker.snapshot().half_open_in_flight == 2


def test_half_open_failure_reopens_fully() -> None:
    harness = Harness(open_duration=10.0, half_open_max_calls=2)
    harness.half_open()
    first = harness.breaker.acquire()
    second = harness.breaker.acquire()
    harness.breaker.record(first, Outcome.SUCCESS)

    harness.clock.advance(3.0)
    harness.breaker.record(second, Outcome.FAILURE)

    assert harness.breaker.state is OPEN
    assert harness.rejection().retry_after == 10.0

    harness.clock.advance(9.5)

    assert harness.breaker.state is OPEN

    harness.clock.advance(0.5)

    assert harness.breaker.state is HALF_OPEN
    assert harness.breaker.snapshot().half_open_successes == 0


def test_half_open_excluded_returns_slot() -> None:
    harness = Harness(half_open_max_calls=1)
    harness.half_open()
    probe = harness.breaker.acquire()

    harness.breaker.record(probe, Outcome.EXCLUDED)
    snapshot = harness.breaker.snapshot()

    assert snapshot.state is HALF_OPEN
    assert snapshot.half_open_in_flight == 0
    assert snapshot.half_open_successes == 0
    assert harness.breaker.acquire().probe is True


def test_half_open_excluded_keeps_successes() -> None:
    harness = Harness(half_open_max_calls=2)
    harness.half_open()
    first = harness.breaker.acquire()
    second = harness.breaker.acquire()

    harness.breaker.record(first, Outcome.SUCCESS)
    harness.breaker.record(second, Outcome.EXCLUDED)

    assert harness.breaker.state is HALF_OPEN
    assert harness.breaker.snapshot().half_open_successes == 1


# Permits of an older generation.


def test_stale_closed_permit_ignored_after_open() -> None:
    harness = Harness(max_failures=2)
    late = harness.breaker.acquire()
    harness.record(Outcome.FAILURE, 2)

    harness.breaker.record(late, Outcome.FAILURE)
    harness.breaker.record(late, Outcome.SUCCESS)

    assert harness.breaker.state is OPEN
    assert harness.transitions() == [(CLOSED, OPEN)]


def test_stale_closed_permit_ignored_in_half_open() -> None:
    harness = Harness(max_failures=2)
    late = harness.breaker.acquire()
    harness.half_open()

    harness.breaker.record(late, Outcome.FAILURE)
    snapshot = harness.breaker.snapshot()

    assert snapshot.state is HALF_OPEN
    assert snapshot.half_open_in_flight == 0


def test_stale_closed_permit_ignored_after_reclose() -> None:
    harness = Harness(max_failures=2)
    late = harness.breaker.acquire()
    harness.half_open()
    harness.record(Outcome.SUCCESS)

    harness.record(Outcome.FAILURE)
    harness.breaker.record(late, Outcome.FAILURE)

    assert harness.breaker.state is CLOSED
    assert harness.breaker.snapshot().consecutive_failures == 1


def test_stale_probe_from_previous_round() -> None:
    harness = Harness(half_open_max_calls=2)
    harness.half_open()
    failing = harness.breaker.acquire()
    late = harness.breaker.acquire()
    harness.breaker.record(failing, Outcome.FAILURE)
    harness.clock.advance(harness.breaker.open_duration)
    current = harness.breaker.acquire()

    harness.breaker.record(late, Outcome.SUCCESS)
    harness.breaker.record(late, Outcome.FAILURE)
    snapshot = harness.breaker.snapshot()

    assert snapshot.state is HALF_OPEN
    assert snapshot.half_open_in_flight == 1
    assert snapshot.half_open_successes == 0
    assert current.generation != late.generation


def test_stale_probe_ignored_after_close() -> None:
    harness = Harness(max_failures=2, half_open_max_calls=1)
    harness.half_open()
    probe = harness.breaker.acquire()
    harness.breaker.record(probe, Outcome.SUCCESS)

    harness.record(Outcome.FAILURE)
    harness.breaker.record(probe, Outcome.FAILURE)

    assert harness.breaker.state is CLOSED
    assert harness.breaker.snapshot().consecutive_failures == 1


# Listener.


def test_listener_one_change_per_transition() -> None:
    harness = Harness(open_duration=10.0)
    opened_at = harness.clock.wall()
    harness.open()
    harness.clock.advance(10.0)
    half_opened_at = harness.clock.wall()

    for _ in range(3):
        assert harness.breaker.state is HALF_OPEN
    harness.clock.advance(1.0)
    closed_at = harness.clock.wall()
    harness.record(Outcome.SUCCESS)
    harness.breaker.snapshot()

    assert harness.changes == [
        StateChange("payments", CLOSED, OPEN, opened_at, "consecutive_failures"),
        StateChange("payments", OPEN, HALF_OPEN, half_opened_at, "open_period_ended"),
        StateChange("payments", HALF_OPEN, CLOSED, closed_at, "probes_succeeded"),
    ]


def test_listener_silent_without_transition() -> None:
    harness = Harness(max_failures=3)

    harness.record(Outcome.FAILURE, 2)
    harness.record(Outcome.SUCCESS)
    harness.record(Outcome.EXCLUDED)

    assert harness.changes == []


def test_listener_called_outside_lock() -> None:
    clock = FakeClock()
    seen: list[BreakerState] = []
    breaker = CircuitBreaker(
        "payments",
        max_failures=1,
        clock=clock,
        listener=lambda event: (
            seen.append(breaker.state) if isinstance(event, StateChange) else None
        ),
    )

    # The lock is not reentrant: a listener run under it would deadlock, so
    # the transition runs in a thread that must finish.
    worker = threading.Thread(
        target=lambda: breaker.record(breaker.acquire(), Outcome.FAILURE),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=5.0)

    assert not worker.is_alive()
    assert seen == [OPEN]


# Constructor.


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_failures": 0}, "max_failures"),
        ({"max_failures": -1}, "max_failures"),
        ({"open_duration": -0.5}, "open_duration"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
    ],
)
def test_constructor_rejects_invalid_arguments(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker("payments", clock=FakeClock(), **options)


# Reference model and state machine.

FORCED_OPEN = BreakerState.FORCED_OPEN
FORCED_CLOSED = BreakerState.FORCED_CLOSED
DISABLED = BreakerState.DISABLED
METRICS_ONLY = BreakerState.METRICS_ONLY
COUNTING = (CLOSED, FORCED_CLOSED, METRICS_ONLY)
ADMIT_ALL = (CLOSED, FORCED_CLOSED, DISABLED, METRICS_ONLY)


@dataclass
class ModelPermit:
    """A permit held by the state machine, with the model's round at acquire."""

    permit: Permit
    round: int
    probe: bool


@dataclass
class ModelConfig:
    """The subset of `BreakerSettings` the model covers (count windows only)."""

    max_failures: int
    open_duration: float
    half_open_max_calls: int
    success_threshold: int
    open_duration_multiplier: float
    max_open_duration: float
    half_open_timeout: float
    trip_policies: list[str]
    window_size: int
    min_calls: int
    failure_rate_threshold: float
    slow_call_duration: float
    slow_call_rate_threshold: float

    def options(self) -> dict[str, Any]:
        options = dict(vars(self))
        options["half_open_success_threshold"] = options.pop("success_threshold")
        return options


class BreakerModel:
    """The breaker's rules, written plainly.

    `round` counts transitions, so a permit from an older round is ignored.
    The open period ends at `open_until`, and the first read, acquire or
    record at or after that time turns the breaker half-open. A probe older
    than `half_open_timeout` reopens it on the same occasions.
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.state = CLOSED
        self.round = 0
        self.failures = 0
        self.window: list[tuple[bool, bool]] = []
        self.open_until = 0.0
        self.probes: dict[int, float] = {}
        self.successes = 0
        self.trips = 0
        self.shadow_trips = 0
        self.transitions: list[tuple[BreakerState, BreakerState]] = []

    def move_to(self, new: BreakerState, now: float) -> None:
        self.transitions.append((self.state, new))
        self.state = new
        self.round += 1
        self.failures = 0
        self.window = []
        self.probes = {}
        self.successes = 0
        if new is OPEN:
            self.trips += 1
            growth = self.config.open_duration_multiplier ** (self.trips - 1)
            period = min(
                self.config.open_duration * growth, self.config.max_open_duration
            )
            self.open_until = now + period
            if period == 0:
                self.move_to(HALF_OPEN, now)
        elif new is not FORCED_OPEN and new is not HALF_OPEN:
            self.trips = 0

    def read(self, now: float) -> None:
        if self.state is OPEN and now >= self.open_until:
            self.move_to(HALF_OPEN, now)
        elif self.state is HALF_OPEN and self.probes:
            timeout = self.config.half_open_timeout
            if timeout > 0 and min(self.probes.values()) + timeout <= now:
                self.move_to(OPEN, now)

    def admits(self) -> bool:
        if self.state in ADMIT_ALL:
            return True
        if self.state is HALF_OPEN:
            return len(self.probes) < self.config.half_open_max_calls
        return False

    def retry_after(self, now: float) -> float:
        if self.state is OPEN:
            return self.open_until - now
        if self.state is FORCED_OPEN:
            return float("inf")
        return 0.0

    def window_totals(self) -> tuple[int, int, int]:
        calls = len(self.window)
        failures = sum(failure for failure, _ in self.window)
        slow = sum(slow for _, slow in self.window)
        return calls, failures, slow

    def tripped_rule(self) -> str | None:
        config = self.config
        if (
            "consecutive" in config.trip_policies
            and self.failures >= config.max_failures
        ):
            return "consecutive_failures"
        calls, failures, slow = self.window_totals()
        if calls < config.min_calls:
            return None
        if (
            "failure_rate" in config.trip_policies
            and failures / calls >= config.failure_rate_threshold
        ):
            return "failure_rate"
        if (
            "slow_call_rate" in config.trip_policies
            and slow / calls >= config.slow_call_rate_threshold
        ):
            return "slow_call_rate"
        return None

    def record(
        self, permit: ModelPermit, outcome: Outcome, duration: float, now: float
    ) -> None:
        self.read(now)
        if permit.round != self.round or self.state is DISABLED:
            return

        counted = outcome is not Outcome.EXCLUDED
        failure = outcome is Outcome.FAILURE
        slow = counted and duration > self.config.slow_call_duration
        if self.state is HALF_OPEN:
            assert permit.probe
            del self.probes[permit.permit.number]
            slow_rule = "slow_call_rate" in self.config.trip_policies
            if failure or (outcome is Outcome.SUCCESS and slow and slow_rule):
                self.move_to(OPEN, now)
            elif outcome is Outcome.SUCCESS:
                self.successes += 1
                if self.successes >= self.config.success_threshold:
                    self.move_to(CLOSED, now)
            return

        assert self.state in COUNTING
        if not counted:
            return
        self.failures = self.failures + 1 if failure else 0
        self.window = [*self.window, (failure, slow)][-self.config.window_size :]
        if self.state is FORCED_CLOSED or self.tripped_rule() is None:
            return
        if self.state is CLOSED:
            self.move_to(OPEN, now)
        else:
            self.shadow_trips += 1
            self.failures = 0
            self.window = []

    def manual(self, target: BreakerState, now: float) -> None:
        if target is CLOSED and self.state is CLOSED:
            self.failures = 0
            self.window = []
            self.trips = 0
        elif self.state is not target:
            self.move_to(target, now)


# Multiples of 0.5 keep every clock reading exact in binary floating point.
ADVANCES = st.sampled_from([0.5, 1.0, 2.5, 5.0])
DURATIONS = st.sampled_from([0.0, 0.5, 1.5, 3.0])
OUTCOMES = st.sampled_from([Outcome.SUCCESS, Outcome.FAILURE, Outcome.EXCLUDED])
MANUAL_STATES = st.sampled_from(
    [CLOSED, FORCED_OPEN, FORCED_CLOSED, DISABLED, METRICS_ONLY]
)
POLICIES = st.sampled_from(
    [
        ["consecutive"],
        ["failure_rate"],
        ["slow_call_rate"],
        ["consecutive", "failure_rate"],
        ["consecutive", "failure_rate", "slow_call_rate"],
    ]
)


@st.composite
def model_configs(draw: st.DrawFn) -> ModelConfig:
    half_open_max_calls = draw(st.integers(1, 3))
    open_duration = draw(st.sampled_from([0.0, 1.0, 2.5, 5.0]))
    window_size = draw(st.integers(1, 6))
    return ModelConfig(
        max_failures=draw(st.integers(1, 4)),
        open_duration=open_duration,
        half_open_max_calls=half_open_max_calls,
        success_threshold=draw(st.integers(1, 4)),
        open_duration_multiplier=draw(st.sampled_from([1.0, 2.0, 3.0])),
        max_open_duration=open_duration + draw(st.sampled_from([0.0, 5.0, 40.0])),
        half_open_timeout=draw(st.sampled_from([0.0, 2.5, 10.0])),
        trip_policies=draw(POLICIES),
        window_size=window_size,
        min_calls=draw(st.integers(1, window_size)),
        failure_rate_threshold=draw(st.sampled_from([0.25, 0.5, 1.0])),
        slow_call_duration=1.0,
        slow_call_rate_threshold=draw(st.sampled_from([0.5, 1.0])),
    )


class BreakerMachine(RuleBasedStateMachine):
    """Random acquires, records, clock steps and manual actions against the model.

    Permits stay in the bundle until recorded, so many calls are in flight at
    once and finish in any order, as concurrent callers do.
    """

    permits = Bundle("permits")

    @initialize(config=model_configs())
    def build(self, config: ModelConfig) -> None:
        self.clock = FakeClock()
        self.events: list[BreakerEvent] = []
        self.breaker = CircuitBreaker(
            "machine",
            clock=self.clock,
            listener=self.events.append,
            **config.options(),
        )
        self.model = BreakerModel(config)

    def _acquire(self) -> Any:
        now = self.clock.monotonic()
        self.model.read(now)
        expected_admit = self.model.admits()
        expected_retry_after = self.model.retry_after(now)

        rejection: CircuitOpenError | None = None
        try:
            permit = self.breaker.acquire()
        except CircuitOpenError as error:
            rejection = error

        if rejection is not None:
            assert not expected_admit, f"rejected in model state {self.model.state}"
            assert rejection.state == self.model.state.value
            assert rejection.retry_after == expected_retry_after
            return multiple()

        assert expected_admit, f"admitted in model state {self.model.state}"
        probe = self.model.state is HALF_OPEN
        assert permit.probe is probe
        if probe:
            self.model.probes[permit.number] = now
        return ModelPermit(permit, self.model.round, probe)

    @rule(target=permits)
    def acquire(self) -> Any:
        return self._acquire()

    @rule(target=permits, seconds=ADVANCES)
    def advance_then_acquire(self, seconds: float) -> Any:
        self.clock.advance(seconds)
        return self._acquire()

    @rule(permit=consumes(permits), outcome=OUTCOMES, duration=DURATIONS)
    def record(self, permit: ModelPermit, outcome: Outcome, duration: float) -> None:
        self.model.record(permit, outcome, duration, self.clock.monotonic())
        self.breaker.record(permit.permit, outcome, duration=duration)

    @rule(seconds=ADVANCES)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(wanted=MANUAL_STATES)
    def manual_action(self, wanted: BreakerState) -> None:
        now = self.clock.monotonic()
        self.model.read(now)
        self.model.manual(wanted, now)
        actions = {
            CLOSED: self.breaker.reset,
            FORCED_OPEN: self.breaker.force_open,
            FORCED_CLOSED: self.breaker.force_close,
            DISABLED: self.breaker.disable,
            METRICS_ONLY: self.breaker.enable_metrics_only,
        }
        actions[wanted]()

    @invariant()
    def matches_model(self) -> None:
        now = self.clock.monotonic()
        self.model.read(now)
        snapshot = self.breaker.snapshot()
        calls, failures, slow = self.model.window_totals()
        changes = [event for event in self.events if isinstance(event, StateChange)]

        assert snapshot.state is self.model.state
        assert snapshot.consecutive_failures == self.model.failures
        assert snapshot.half_open_in_flight == len(self.model.probes)
        assert snapshot.half_open_successes == self.model.successes
        if self.model.state is OPEN:
            assert snapshot.open_remaining == self.model.retry_after(now)
        else:
            assert snapshot.open_remaining == 0.0
        assert snapshot.window_calls == calls
        assert snapshot.window_failures == failures
        assert snapshot.window_slow_calls == slow
        assert snapshot.trips == self.model.trips
        assert snapshot.shadow_trips == self.model.shadow_trips
        assert [(c.old, c.new) for c in changes] == self.model.transitions


BreakerMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None
)
test_breaker_matches_reference_model = BreakerMachine.TestCase
