"""One test per breaker rule: trip policies, windows, half-open, open periods,
manual states, events and reconfiguration. Time comes from a `FakeClock`."""

from __future__ import annotations

import logging
import math
import random
from typing import Any

import pytest

from faultguard_core._windows import CountWindow, TimeWindow
from faultguard_core.breaker import (
    BreakerEvent,
    BreakerState,
    CallRecorded,
    CallRejected,
    CircuitBreaker,
    Outcome,
    StateChange,
)
from faultguard_core.clock import FakeClock
from faultguard_core.errors import CircuitOpenError
from faultguard_core.settings import BreakerSettings

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
SUCCESS = Outcome.SUCCESS
FAILURE = Outcome.FAILURE
EXCLUDED = Outcome.EXCLUDED


class Rig:
    """A breaker on a fake clock that keeps every event it emitted."""

    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock()
        self.events: list[BreakerEvent] = []
        options.setdefault("open_duration", 10.0)
        self.breaker = CircuitBreaker(
            "svc",
            clock=self.clock,
            listener=self.events.append,
            rng=random.Random(3),
            **options,
        )

    def call(self, outcome: Outcome, count: int = 1, *, duration: float = 0.0) -> None:
        for _ in range(count):
            permit = self.breaker.acquire()
            self.breaker.record(permit, outcome, duration=duration)

    def changes(self) -> list[tuple[BreakerState, BreakerState, str]]:
        return [
            (event.old, event.new, event.reason)
            for event in self.events
            if isinstance(event, StateChange)
        ]

    def retry_after(self) -> float:
        with pytest.raises(CircuitOpenError) as info:
            self.breaker.acquire()
        return info.value.retry_after

    def trip(self) -> None:
        """Open a `consecutive` breaker from closed or half-open."""
        while self.breaker.state is not OPEN:
            self.call(FAILURE)

    def half_open(self) -> None:
        self.clock.advance(self.breaker.snapshot().open_remaining)
        assert self.breaker.state is HALF_OPEN


# Trip policies.


def test_failure_rate_opens_at_threshold() -> None:
    rig = Rig(trip_policies=["failure_rate"], window_size=10, min_calls=10)

    rig.call(SUCCESS, 5)
    rig.call(FAILURE, 4)
    assert rig.breaker.state is CLOSED

    rig.call(FAILURE)

    assert rig.breaker.state is OPEN
    assert rig.changes() == [(CLOSED, OPEN, "failure_rate")]


def test_failure_rate_waits_for_min_calls() -> None:
    rig = Rig(trip_policies=["failure_rate"], window_size=20, min_calls=5)

    rig.call(FAILURE, 4)

    assert rig.breaker.state is CLOSED
    assert rig.breaker.snapshot().window_failures == 4

    rig.call(FAILURE)

    assert rig.breaker.state is OPEN


def test_failure_rate_ignores_consecutive_count() -> None:
    rig = Rig(trip_policies=["failure_rate"], max_failures=1, min_calls=4)

    rig.call(FAILURE, 3)

    assert rig.breaker.state is CLOSED


def test_count_window_drops_oldest_call() -> None:
    rig = Rig(
        trip_policies=["failure_rate"],
        window_size=4,
        min_calls=4,
        failure_rate_threshold=0.75,
    )

    rig.call(FAILURE, 2)
    rig.call(SUCCESS, 2)
    rig.call(FAILURE)

    snapshot = rig.breaker.snapshot()
    assert snapshot.window_calls == 4
    assert snapshot.window_failures == 2
    assert rig.breaker.state is CLOSED

    rig.call(FAILURE)

    assert rig.breaker.state is CLOSED
    rig.call(FAILURE)
    assert rig.breaker.state is OPEN


def test_time_window_forgets_old_buckets() -> None:
    rig = Rig(
        trip_policies=["failure_rate"],
        window_type="time",
        window_duration=10.0,
        window_buckets=5,
        min_calls=3,
    )

    rig.call(FAILURE, 2)
    rig.clock.advance(10.0)
    rig.call(FAILURE)

    assert rig.breaker.state is CLOSED
    assert rig.breaker.snapshot().window_calls == 1

    rig.clock.advance(4.0)
    rig.call(FAILURE, 2)

    assert rig.breaker.state is OPEN


def test_slow_call_rate_opens_on_slow_successes() -> None:
    rig = Rig(
        trip_policies=["slow_call_rate"],
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.5,
        min_calls=4,
    )

    rig.call(SUCCESS, 2, duration=0.2)
    rig.call(SUCCESS, 1, duration=1.5)
    assert rig.breaker.snapshot().window_slow_calls == 1
    assert rig.breaker.state is CLOSED

    rig.call(SUCCESS, 1, duration=2.0)

    assert rig.breaker.state is OPEN
    assert rig.changes() == [(CLOSED, OPEN, "slow_call_rate")]


def test_slow_call_at_threshold_not_slow() -> None:
    rig = Rig(trip_policies=["slow_call_rate"], slow_call_duration=1.0, min_calls=1)

    rig.call(SUCCESS, duration=1.0)

    assert rig.breaker.state is CLOSED
    assert rig.breaker.snapshot().window_slow_calls == 0


def test_slow_duration_measured_by_clock() -> None:
    rig = Rig(trip_policies=["slow_call_rate"], slow_call_duration=1.0, min_calls=1)
    permit = rig.breaker.acquire()

    rig.clock.advance(2.5)
    rig.breaker.record(permit, SUCCESS)

    recorded = [event for event in rig.events if isinstance(event, CallRecorded)]
    assert recorded[0].duration == 2.5
    assert recorded[0].slow is True
    assert rig.breaker.state is OPEN


def test_several_rules_any_opens() -> None:
    rig = Rig(
        trip_policies=["consecutive", "failure_rate"],
        max_failures=3,
        min_calls=4,
        failure_rate_threshold=0.5,
    )

    rig.call(FAILURE, 2)
    rig.call(SUCCESS)
    rig.call(FAILURE)

    assert rig.breaker.state is OPEN
    assert rig.changes() == [(CLOSED, OPEN, "failure_rate")]


def test_success_resets_consecutive_count() -> None:
    rig = Rig(max_failures=3)

    rig.call(FAILURE, 2)
    rig.call(SUCCESS)
    rig.call(FAILURE, 2)

    assert rig.breaker.state is CLOSED
    assert rig.breaker.snapshot().consecutive_failures == 2


def test_excluded_calls_stay_out_of_window() -> None:
    rig = Rig(trip_policies=["failure_rate"], min_calls=2)

    rig.call(EXCLUDED, 5)
    rig.call(FAILURE)

    snapshot = rig.breaker.snapshot()
    assert snapshot.window_calls == 1
    assert snapshot.state is CLOSED


def test_counts_reset_on_state_change() -> None:
    rig = Rig(
        trip_policies=["consecutive", "failure_rate"],
        max_failures=2,
        min_calls=5,
        half_open_max_calls=1,
    )
    rig.call(SUCCESS, 3)
    rig.call(FAILURE, 2)
    rig.half_open()

    rig.call(SUCCESS)
    snapshot = rig.breaker.snapshot()

    assert snapshot.state is CLOSED
    assert snapshot.window_calls == 0
    assert snapshot.window_failures == 0
    assert snapshot.consecutive_failures == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trip_policies": []}, "trip_policies"),
        (
            {"trip_policies": ["failure_rate"], "min_calls": 20, "window_size": 10},
            "min_calls",
        ),
        ({"failure_rate_threshold": 0.0}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        ({"max_open_duration": 5.0, "open_duration": 10.0}, "max_open_duration"),
        ({"open_duration_multiplier": 0.5}, "open_duration_multiplier"),
        ({"jitter": 2.0}, "jitter"),
        ({"window_duration": 0}, "window_duration"),
        ({"half_open_success_threshold": 0}, "half_open_success_threshold"),
        ({"failure_statuses": ["6xx"]}, "6xx"),
    ],
)
def test_settings_reject_invalid_combinations(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BreakerSettings.model_validate(options)


# Windows on their own.


def test_count_window_resize_keeps_newest() -> None:
    window = CountWindow(4)
    for failure in (True, True, False, False):
        window.add(0.0, failure=failure, slow=False)

    window.resize(2)

    assert window.totals(0.0).calls == 2
    assert window.totals(0.0).failures == 0


def test_time_window_long_gap_clears_all() -> None:
    window = TimeWindow(10.0, 10)
    window.add(100.0, failure=True, slow=True)

    totals = window.totals(1000.0)

    assert totals.calls == 0
    assert totals.failures == 0
    assert totals.slow == 0


def test_time_window_span_between_bounds() -> None:
    window = TimeWindow(10.0, 5)
    window.add(100.0, failure=True, slow=False)

    assert window.totals(109.9).calls == 1
    assert window.totals(110.0).calls == 0


# Half-open.


def test_half_open_success_threshold_closes() -> None:
    rig = Rig(max_failures=1, half_open_max_calls=1, half_open_success_threshold=3)
    rig.trip()
    rig.half_open()

    rig.call(SUCCESS, 2)
    assert rig.breaker.state is HALF_OPEN

    rig.call(SUCCESS)

    assert rig.breaker.state is CLOSED


def test_half_open_threshold_below_max_calls() -> None:
    rig = Rig(max_failures=1, half_open_max_calls=3, half_open_success_threshold=1)
    rig.trip()
    rig.half_open()
    first = rig.breaker.acquire()
    late = rig.breaker.acquire()

    rig.breaker.record(first, SUCCESS)
    rig.breaker.record(late, FAILURE)

    assert rig.breaker.state is CLOSED
    assert rig.breaker.snapshot().consecutive_failures == 0


def test_half_open_rejects_extra_callers_at_once() -> None:
    rig = Rig(max_failures=1, half_open_max_calls=2)
    rig.trip()
    rig.half_open()
    rig.breaker.acquire()
    rig.breaker.acquire()

    rejected = [rig.retry_after() for _ in range(50)]

    assert rejected == [0.0] * 50
    assert rig.breaker.snapshot().half_open_in_flight == 2


def test_half_open_timeout_reopens() -> None:
    rig = Rig(max_failures=1, half_open_timeout=5.0, open_duration_multiplier=1.0)
    rig.trip()
    rig.half_open()
    lost = rig.breaker.acquire()

    rig.clock.advance(4.5)
    assert rig.breaker.state is HALF_OPEN
    rig.clock.advance(0.5)

    assert rig.breaker.state is OPEN
    assert rig.changes()[-1] == (HALF_OPEN, OPEN, "probe_timed_out")
    rig.breaker.record(lost, SUCCESS)
    assert rig.breaker.state is OPEN
    rig.half_open()
    assert rig.breaker.acquire().probe is True


def test_half_open_timeout_zero_waits() -> None:
    rig = Rig(max_failures=1, half_open_timeout=0.0)
    rig.trip()
    rig.half_open()
    rig.breaker.acquire()

    rig.clock.advance(3600.0)

    assert rig.breaker.state is HALF_OPEN


def test_half_open_slow_probe_reopens() -> None:
    rig = Rig(
        trip_policies=["consecutive", "slow_call_rate"],
        max_failures=1,
        slow_call_duration=1.0,
    )
    rig.trip()
    rig.half_open()

    rig.call(SUCCESS, duration=2.0)

    assert rig.breaker.state is OPEN
    assert rig.changes()[-1] == (HALF_OPEN, OPEN, "probe_slow")


def test_half_open_slow_probe_without_rule() -> None:
    rig = Rig(max_failures=1, slow_call_duration=1.0)
    rig.trip()
    rig.half_open()

    rig.call(SUCCESS, duration=2.0)

    assert rig.breaker.state is CLOSED


# Open periods.


def test_open_period_grows_per_trip() -> None:
    rig = Rig(
        max_failures=1,
        open_duration=10.0,
        open_duration_multiplier=2.0,
        max_open_duration=35.0,
    )
    periods = []

    for _ in range(4):
        rig.trip()
        periods.append(rig.retry_after())
        rig.half_open()

    assert periods == [10.0, 20.0, 35.0, 35.0]
    assert rig.breaker.snapshot().trips == 4


def test_open_period_resets_after_close() -> None:
    rig = Rig(max_failures=1, open_duration=10.0, open_duration_multiplier=3.0)
    rig.trip()
    rig.half_open()
    rig.trip()
    assert rig.retry_after() == 30.0
    rig.half_open()

    rig.call(SUCCESS)
    rig.trip()

    assert rig.retry_after() == 10.0
    assert rig.breaker.snapshot().trips == 1


def test_open_period_huge_trip_count_capped() -> None:
    rig = Rig(
        max_failures=1,
        open_duration=1.0,
        open_duration_multiplier=100.0,
        max_open_duration=60.0,
        half_open_timeout=0.0,
    )

    for _ in range(200):
        rig.trip()
        rig.half_open()
    rig.trip()

    assert rig.retry_after() == 60.0


def test_open_period_jitter_within_bounds() -> None:
    periods = set()
    for seed in range(30):
        clock = FakeClock()
        breaker = CircuitBreaker(
            "svc",
            clock=clock,
            rng=random.Random(seed),
            max_failures=1,
            open_duration=10.0,
            jitter=0.2,
        )
        breaker.record(breaker.acquire(), FAILURE)
        periods.add(breaker.snapshot().open_remaining)

    assert min(periods) >= 8.0
    assert max(periods) <= 12.0
    assert len(periods) > 20


def test_retry_after_lengthens_open_period() -> None:
    rig = Rig(max_failures=2, open_duration=10.0, max_open_duration=60.0)
    first = rig.breaker.acquire()
    second = rig.breaker.acquire()

    rig.breaker.record(first, FAILURE, retry_after=45.0)
    rig.clock.advance(5.0)
    rig.breaker.record(second, FAILURE)

    assert rig.retry_after() == 40.0


def test_retry_after_capped_by_max() -> None:
    rig = Rig(max_failures=1, open_duration=10.0, max_open_duration=60.0)

    rig.breaker.record(rig.breaker.acquire(), FAILURE, retry_after=3600.0)

    assert rig.retry_after() == 60.0


def test_retry_after_shorter_keeps_period() -> None:
    rig = Rig(max_failures=1, open_duration=10.0)

    rig.breaker.record(rig.breaker.acquire(), FAILURE, retry_after=2.0)

    assert rig.retry_after() == 10.0


def test_retry_after_on_success_ignored() -> None:
    rig = Rig(max_failures=2, open_duration=10.0, max_open_duration=60.0)

    rig.breaker.record(rig.breaker.acquire(), SUCCESS, retry_after=50.0)
    rig.call(FAILURE, 2)

    assert rig.retry_after() == 10.0


# Manual states.


def test_forced_open_rejects_with_infinity() -> None:
    rig = Rig()

    rig.breaker.force_open()
    error_after = rig.retry_after()

    assert error_after == math.inf
    assert rig.breaker.state is BreakerState.FORCED_OPEN
    rig.clock.advance(10_000.0)
    assert rig.breaker.state is BreakerState.FORCED_OPEN
    assert rig.changes() == [(CLOSED, BreakerState.FORCED_OPEN, "force_open")]


def test_forced_closed_counts_never_opens() -> None:
    rig = Rig(max_failures=2)

    rig.breaker.force_close()
    rig.call(FAILURE, 10)

    snapshot = rig.breaker.snapshot()
    assert snapshot.state is BreakerState.FORCED_CLOSED
    assert snapshot.consecutive_failures == 10
    assert snapshot.window_failures == 10


def test_disabled_admits_and_counts_nothing() -> None:
    rig = Rig(max_failures=1)

    rig.breaker.disable()
    rig.call(FAILURE, 5)

    snapshot = rig.breaker.snapshot()
    assert snapshot.state is BreakerState.DISABLED
    assert snapshot.consecutive_failures == 0
    assert snapshot.window_calls == 0
    assert not [event for event in rig.events if isinstance(event, CallRecorded)]


def test_metrics_only_reports_shadow_trips() -> None:
    rig = Rig(max_failures=2)

    rig.breaker.enable_metrics_only()
    rig.call(FAILURE, 5)

    snapshot = rig.breaker.snapshot()
    recorded = [event for event in rig.events if isinstance(event, CallRecorded)]
    assert snapshot.state is BreakerState.METRICS_ONLY
    assert snapshot.shadow_trips == 2
    assert snapshot.consecutive_failures == 1
    assert [event.tripped_rule for event in recorded] == [
        None,
        "consecutive_failures",
        None,
        "consecutive_failures",
        None,
    ]


def test_reset_returns_to_first_period() -> None:
    rig = Rig(max_failures=1, open_duration=10.0, open_duration_multiplier=2.0)
    rig.trip()
    rig.half_open()
    rig.trip()

    rig.breaker.reset()
    rig.trip()

    assert rig.retry_after() == 10.0
    assert rig.changes()[-2] == (OPEN, CLOSED, "reset")


def test_reset_closed_clears_counts_silently() -> None:
    rig = Rig(max_failures=3)
    rig.call(FAILURE, 2)

    rig.breaker.reset()

    assert rig.breaker.snapshot().consecutive_failures == 0
    assert rig.changes() == []


def test_manual_state_ignores_old_permits() -> None:
    rig = Rig(max_failures=1)
    before = rig.breaker.acquire()

    rig.breaker.force_close()
    rig.breaker.record(before, FAILURE)

    assert rig.breaker.snapshot().consecutive_failures == 0


def test_manual_action_repeated_is_one_transition() -> None:
    rig = Rig()

    rig.breaker.force_open()
    rig.breaker.force_open()

    assert len(rig.changes()) == 1


def test_gauge_values_of_every_state() -> None:
    values = {state: state.gauge_value for state in BreakerState}

    assert values == {
        CLOSED: 0,
        OPEN: 1,
        HALF_OPEN: 2,
        BreakerState.FORCED_OPEN: 3,
        BreakerState.FORCED_CLOSED: 4,
        BreakerState.DISABLED: 5,
        BreakerState.METRICS_ONLY: 6,
    }


# Permits.


def test_permit_recorded_twice_counts_once() -> None:
    rig = Rig(max_failures=2)
    permit = rig.breaker.acquire()

    rig.breaker.record(permit, FAILURE)
    rig.breaker.record(permit, FAILURE)

    assert rig.breaker.snapshot().consecutive_failures == 1
    assert rig.breaker.state is CLOSED


def test_in_flight_counts_admitted_calls() -> None:
    rig = Rig()
    permits = [rig.breaker.acquire() for _ in range(3)]

    rig.breaker.record(permits[0], SUCCESS)

    assert rig.breaker.snapshot().in_flight == 2
    assert not rig.breaker.is_idle()


# Events.


def test_events_in_order_once_each() -> None:
    rig = Rig(max_failures=1)

    rig.call(FAILURE)
    rig.retry_after()

    kinds = [type(event).__name__ for event in rig.events]
    assert kinds == ["CallRecorded", "StateChange", "CallRejected"]
    rejected = rig.events[2]
    assert isinstance(rejected, CallRejected)
    assert rejected.retry_after == 10.0


def test_listener_error_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()

    def explode(event: BreakerEvent) -> None:
        raise RuntimeError("listener broke")

    breaker = CircuitBreaker("svc", clock=clock, listener=explode, max_failures=1)

    with caplog.at_level(logging.ERROR, logger="faultguard"):
        breaker.record(breaker.acquire(), FAILURE)

    assert breaker.state is OPEN
    assert [record.message for record in caplog.records].count(
        "breaker_listener_failed"
    ) == 2


def test_listener_reentry_keeps_order() -> None:
    clock = FakeClock()
    seen: list[str] = []

    def listener(event: BreakerEvent) -> None:
        seen.append(type(event).__name__)
        if isinstance(event, StateChange) and event.new is OPEN:
            # Reading the breaker inside the listener queues nothing new, and
            # acquiring queues a rejection that must come after this event.
            with pytest.raises(CircuitOpenError):
                breaker.acquire()
            seen.append("listener_returned")

    breaker = CircuitBreaker("svc", clock=clock, listener=listener, max_failures=1)
    breaker.record(breaker.acquire(), FAILURE)

    assert seen == ["CallRecorded", "StateChange", "listener_returned", "CallRejected"]


# Reconfiguration.


def test_reconfigure_keeps_state_and_counts() -> None:
    rig = Rig(max_failures=5)
    rig.call(FAILURE, 3)

    rig.breaker.reconfigure(BreakerSettings(max_failures=4, open_duration=10.0))
    snapshot = rig.breaker.snapshot()

    assert snapshot.consecutive_failures == 3
    assert snapshot.state is CLOSED
    rig.call(FAILURE)
    assert rig.breaker.state is OPEN


def test_reconfigure_keeps_open_period() -> None:
    rig = Rig(max_failures=1, open_duration=10.0)
    rig.trip()
    rig.clock.advance(4.0)

    rig.breaker.reconfigure(BreakerSettings(max_failures=1, open_duration=100.0))

    assert rig.breaker.state is OPEN
    assert rig.retry_after() == 6.0


def test_reconfigure_window_type_starts_empty() -> None:
    rig = Rig(trip_policies=["failure_rate"], min_calls=5)
    rig.call(FAILURE, 3)

    rig.breaker.reconfigure(
        BreakerSettings(trip_policies=["failure_rate"], window_type="time", min_calls=5)
    )

    assert rig.breaker.snapshot().window_calls == 0
