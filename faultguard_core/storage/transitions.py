"""The breaker state machine shared by the local and SQLite breaker state stores.

The functions change a `BreakerRow` in place, given the current Unix time.
The Redis plugin runs the same rules as Lua scripts; keep them in step.

Rules (the consecutive-failures policy of `CircuitBreaker`):

- closed: every call is admitted. A failure adds one to `failures`, a
  success resets it, and `max_failures` failures open the breaker.
- open: calls are rejected until `open_until`; the first acquire or read
  after that turns the breaker half-open.
- half-open: at most `half_open_max_calls` probes at once. A failure reopens
  the breaker, and `half_open_max_calls` successes close it. When every slot
  is taken and no probe reported before `probe_deadline`, the slots are
  reclaimed in a new generation, so late reports of lost probes are ignored.

Every transition increments `generation` and resets the counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from faultguard_core.storage.base import (
    Admission,
    BreakerPolicy,
    BreakerRecord,
    RecordResult,
    SharedBreakerState,
    SharedOutcome,
)

CLOSED = SharedBreakerState.CLOSED
OPEN = SharedBreakerState.OPEN
HALF_OPEN = SharedBreakerState.HALF_OPEN


@dataclass(slots=True)
class BreakerRow:
    """The stored fields of one breaker; times are Unix seconds."""

    state: SharedBreakerState = CLOSED
    generation: int = 0
    failures: int = 0
    open_until: float = 0.0
    probes_in_flight: int = 0
    probe_successes: int = 0
    probe_deadline: float = 0.0

    def record(self, now: float) -> BreakerRecord:
        """Return the public view of this row at Unix time `now`."""
        remaining = max(0.0, self.open_until - now) if self.state is OPEN else 0.0
        return BreakerRecord(
            state=self.state,
            generation=self.generation,
            failures=self.failures,
            probes_in_flight=self.probes_in_flight,
            probe_successes=self.probe_successes,
            open_remaining=remaining,
        )


def transition(
    row: BreakerRow, new: SharedBreakerState, now: float, opened_for: float
) -> None:
    """Move `row` to `new`, starting a generation; `opened_for` sets an open period."""
    row.state = new
    row.generation += 1
    row.failures = 0
    row.probes_in_flight = 0
    row.probe_successes = 0
    row.probe_deadline = 0.0
    row.open_until = now + opened_for if new is OPEN else 0.0


def refresh(row: BreakerRow, now: float) -> SharedBreakerState | None:
    """Turn an open row whose period ended half-open; returns the old state if so."""
    if row.state is OPEN and now >= row.open_until:
        transition(row, HALF_OPEN, now, 0.0)
        return OPEN
    return None


def acquire(row: BreakerRow, policy: BreakerPolicy, now: float) -> Admission:
    """Admit or reject one call, taking a probe slot when half-open."""
    previous = refresh(row, now)

    slots_full = row.probes_in_flight >= policy.half_open_max_calls
    if row.state is HALF_OPEN and slots_full and now >= row.probe_deadline:
        # Every slot is held by a probe that never reported.
        transition(row, HALF_OPEN, now, 0.0)

    if row.state is CLOSED:
        return Admission(True, row.generation, False, CLOSED, 0.0, previous)

    if row.state is HALF_OPEN and row.probes_in_flight < policy.half_open_max_calls:
        row.probes_in_flight += 1
        row.probe_deadline = now + policy.probe_timeout
        return Admission(True, row.generation, True, HALF_OPEN, 0.0, previous)

    retry_after = max(0.0, row.open_until - now) if row.state is OPEN else 0.0
    return Admission(False, row.generation, False, row.state, retry_after, previous)


def record(
    row: BreakerRow,
    policy: BreakerPolicy,
    generation: int,
    probe: bool,
    outcome: SharedOutcome,
    now: float,
) -> RecordResult:
    """Count one outcome of a call admitted in `generation`."""
    old = row.state
    if generation != row.generation:
        return RecordResult(row.state)

    if row.state is CLOSED:
        if outcome is SharedOutcome.SUCCESS:
            row.failures = 0
        elif outcome is SharedOutcome.FAILURE:
            row.failures += 1
            if row.failures >= policy.max_failures:
                transition(row, OPEN, now, policy.open_duration)
                return RecordResult(OPEN, old)
        return RecordResult(CLOSED)

    if row.state is not HALF_OPEN or not probe:
        return RecordResult(row.state)

    row.probes_in_flight = max(0, row.probes_in_flight - 1)
    if outcome is SharedOutcome.FAILURE:
        transition(row, OPEN, now, policy.open_duration)
        return RecordResult(OPEN, old)
    if outcome is SharedOutcome.SUCCESS:
        row.probe_successes += 1
        if row.probe_successes >= policy.half_open_max_calls:
            transition(row, CLOSED, now, 0.0)
            return RecordResult(CLOSED, old)
    return RecordResult(HALF_OPEN)


def trip(row: BreakerRow, open_remaining: float, now: float) -> RecordResult:
    """Open `row` for at least `open_remaining` seconds from `now`."""
    refresh(row, now)
    old = row.state
    until = now + max(0.0, open_remaining)
    if row.state is OPEN:
        row.open_until = max(row.open_until, until)
        return RecordResult(OPEN)
    transition(row, OPEN, now, max(0.0, open_remaining))
    return RecordResult(OPEN, old)
