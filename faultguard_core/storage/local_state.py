"""The `local` breaker state store: rows in a dict, private to this process."""

from __future__ import annotations

from faultguard_core.clock import Clock, SystemClock
from faultguard_core.storage import transitions
from faultguard_core.storage.base import (
    Admission,
    BreakerPolicy,
    BreakerRecord,
    BreakerStateStore,
    RecordResult,
    SharedOutcome,
)
from faultguard_core.storage.transitions import BreakerRow


class LocalBreakerStateStore(BreakerStateStore):
    """Breaker state kept in this process, with the rules of `transitions`.

    Each method runs without awaiting, so it is atomic on one event loop.
    Time is the wall time of `clock`. The state is lost on restart, and
    other processes do not see it. The guard uses the in-process
    `CircuitBreaker` for `storage.breaker_state = "local"`; this store is
    the reference implementation of the contract and the degraded mode of
    remote stores.
    """

    # NOTE: rows are never evicted; the guard's breaker registry bounds the
    # number of names that reach this store.

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._rows: dict[str, BreakerRow] = {}

    def _row(self, name: str) -> BreakerRow:
        row = self._rows.get(name)
        if row is None:
            row = BreakerRow()
            self._rows[name] = row
        return row

    async def acquire(self, name: str, policy: BreakerPolicy) -> Admission:
        """Admit or reject one call to `name`."""
        return transitions.acquire(self._row(name), policy, self._clock.wall())

    async def record(
        self,
        name: str,
        policy: BreakerPolicy,
        generation: int,
        probe: bool,
        outcome: SharedOutcome,
    ) -> RecordResult:
        """Count one outcome of a call to `name`."""
        row = self._row(name)
        return transitions.record(
            row, policy, generation, probe, outcome, self._clock.wall()
        )

    async def read(self, name: str, policy: BreakerPolicy) -> BreakerRecord:
        """Return the state of `name` after a due open-to-half-open transition."""
        row = self._row(name)
        now = self._clock.wall()
        transitions.refresh(row, now)
        return row.record(now)

    async def trip(
        self, name: str, policy: BreakerPolicy, open_remaining: float
    ) -> RecordResult:
        """Open `name` for at least `open_remaining` seconds."""
        return transitions.trip(self._row(name), open_remaining, self._clock.wall())

    def names(self) -> list[str]:
        """Return the name of every breaker this store has seen."""
        return list(self._rows)
