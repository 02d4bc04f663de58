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
    """A breaker on a fake clock, with every `StateChange` it emitted."""

    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock()
        self.changes: list[StateChange] = []
        options.setdefault("max_failures", 3)
        options.setdefault("open_duration", 10.0)
        options.setdefault("half_open_max_calls", 1)
        self.breaker = CircuitBreaker(
            "payments", clock=self.clock, listener=self.changes.append, **options
        )

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
        StateChange("payments", CLOSED, OPEN, opened_at),
        StateChange("payments", OPEN, HALF_OPEN, half_opened_at),
        StateChange("payments", HALF_OPEN, CLOSED, closed_at),
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
        listener=lambda change: seen.append(breaker.state),
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


@dataclass
class ModelPermit:
    """A permit held by the state machine, with the model's round at acquire."""

    permit: Permit
    round: int
    probe: bool


class BreakerModel:
    """The breaker's rules, written plainly.

    `round` counts transitions, so a permit from an older round is ignored.
    The open period ends at `open_until`, and the first read or acquire at or
    after that time turns the breaker half-open.
    """

    def __init__(
        self, max_failures: int, open_duration: float, half_open_max_calls: int
    ) -> None:
        self.max_failures = max_failures
        self.open_duration = open_duration
        self.half_open_max_calls = half_open_max_calls
        self.state = CLOSED
        self.round = 0
        self.failures = 0
        self.open_until = 0.0
        self.in_flight = 0
        self.successes = 0
        self.transitions: list[tuple[BreakerState, BreakerState]] = []

    def move_to(self, new: BreakerState, now: float) -> None:
        self.transitions.append((self.state, new))
        self.state = new
        self.round += 1
        self.failures = 0
        self.in_flight = 0
        self.successes = 0
        if new is OPEN:
            self.open_until = now + self.open_duration

    def read(self, now: float) -> None:
        if self.state is OPEN and now >= self.open_until:
            self.move_to(HALF_OPEN, now)

    def admits(self) -> bool:
        if self.state is CLOSED:
            return True
        if self.state is HALF_OPEN:
            return self.in_flight < self.half_open_max_calls
        return False

    def retry_after(self, now: float) -> float:
        if self.state is OPEN:
            return self.open_until - now
        return 0.0

    def record(self, permit: ModelPermit, outcome: Outcome, now: float) -> None:
        if permit.round != self.round:
            return

        if self.state is CLOSED:
            if outcome is Outcome.SUCCESS:
                self.failures = 0
            if outcome is Outcome.FAILURE:
                self.failures += 1
                if self.failures == self.max_failures:
                    self.move_to(OPEN, now)
            return

        assert self.state is HALF_OPEN
        assert permit.probe
        self.in_flight -= 1
        if outcome is Outcome.FAILURE:
            self.move_to(OPEN, now)
        if outcome is Outcome.SUCCESS:
            self.successes += 1
            if self.successes == self.half_open_max_calls:
                self.move_to(CLOSED, now)


# Multiples of 0.5 keep every clock reading exact in binary floating point.
ADVANCES = st.sampled_from([0.5, 1.0, 2.5, 5.0])


class BreakerMachine(RuleBasedStateMachine):
    """Random acquire, record and clock steps, checked against `BreakerModel`."""

    permits = Bundle("permits")

    @initialize(
        max_failures=st.integers(1, 4),
        open_duration=st.sampled_from([0.0, 1.0, 2.5, 5.0]),
        half_open_max_calls=st.integers(1, 3),
    )
    def build(
        self, max_failures: int, open_duration: float, half_open_max_calls: int
    ) -> None:
        self.clock = FakeClock()
        self.changes: list[StateChange] = []
        self.breaker = CircuitBreaker(
            "machine",
            max_failures=max_failures,
            open_duration=open_duration,
            half_open_max_calls=half_open_max_calls,
            clock=self.clock,
            listener=self.changes.append,
        )
        self.model = BreakerModel(max_failures, open_duration, half_open_max_calls)

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
            self.model.in_flight += 1
        return ModelPermit(permit, self.model.round, probe)

    @rule(target=permits)
    def acquire(self) -> Any:
        return self._acquire()

    @rule(target=permits, seconds=ADVANCES)
    def advance_then_acquire(self, seconds: float) -> Any:
        self.clock.advance(seconds)
        return self._acquire()

    @rule(
        permit=consumes(permits),
        outcome=st.sampled_from([Outcome.SUCCESS, Outcome.FAILURE, Outcome.EXCLUDED]),
    )
    def record(self, permit: ModelPermit, outcome: Outcome) -> None:
        self.model.record(permit, outcome, self.clock.monotonic())
        self.breaker.record(permit.permit, outcome)

    @rule(seconds=ADVANCES)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def matches_model(self) -> None:
        now = self.clock.monotonic()
        self.model.read(now)
        snapshot = self.breaker.snapshot()

        assert snapshot.state is self.model.state
        assert snapshot.consecutive_failures == self.model.failures
        assert snapshot.half_open_in_flight == self.model.in_flight
        assert snapshot.half_open_successes == self.model.successes
        assert snapshot.open_remaining == self.model.retry_after(now)
        assert [(c.old, c.new) for c in self.changes] == self.model.transitions


BreakerMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_breaker_matches_reference_model = BreakerMachine.TestCase
