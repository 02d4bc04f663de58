"""Breakers whose state lives in a breaker state store, with local degradation.

`SharedBreakers` is what `Guard._admit` and `Guard._record` call for a
breaker whose state is shared (`storage.breaker_state` names a backend) or
persisted (`breaker.persist_state`). Each call is one atomic step in the
store, bounded by the store's `operation_timeout`, and no lock is held while
the upstream call runs.

When the store fails or times out, the breaker degrades: calls go to the
guard's in-process `CircuitBreaker` of the same name, and the store is tried
again after `RECONNECT_INTERVAL` seconds. The first success after that
publishes every breaker that opened locally meanwhile (`trip`), so the fleet
learns about it, and then the store is authoritative again. Degradation and
recovery are each logged once per episode and counted through `on_degraded`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from faultguard_core.breaker import (
    BreakerState,
    CircuitBreaker,
    Outcome,
    Permit,
    StateChange,
)
from faultguard_core.clock import Clock
from faultguard_core.errors import CircuitOpenError, StorageError
from faultguard_core.storage._outage import StoreOutage, bounded
from faultguard_core.storage.base import (
    BreakerPolicy,
    BreakerRecord,
    BreakerStateStore,
    SharedBreakerState,
    SharedOutcome,
)

logger = logging.getLogger("faultguard")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SharedPermit(Permit):
    """A permit granted by the breaker state store, not by the local breaker."""


class SharedBreakers:
    """Admission and outcome recording through a `BreakerStateStore`.

    `policy_of(name)` returns the store policy of breaker `name`, or None
    when that breaker stays local. `on_change` receives each transition this
    process made in the store. `on_degraded` is called once each time the
    store becomes unusable.
    """

    def __init__(
        self,
        store: BreakerStateStore,
        *,
        policy_of: Callable[[str], BreakerPolicy | None],
        clock: Clock,
        on_change: Callable[[StateChange], None],
        on_degraded: Callable[[], None],
        timeout: float | None = None,
    ) -> None:
        self.store = store
        self._policy_of = policy_of
        self._clock = clock
        self._on_change = on_change
        self._timeout = timeout
        self._outage = StoreOutage("breaker_state_store", clock, on_degraded)
        self._local_breakers: dict[str, CircuitBreaker] = {}
        self._observed: dict[str, SharedBreakerState] = {}

    @property
    def degraded(self) -> bool:
        """True while calls use the local breakers because the store failed."""
        return self._outage.active

    async def open(self) -> None:
        """Open the store; raises `StorageError` when it cannot be used at all."""
        await self.store.open()

    async def close(self) -> None:
        """Close the store."""
        await self.store.close()

    def observed_state(self, breaker: CircuitBreaker) -> BreakerState:
        """Return the state this process last saw in the store for `breaker`.

        Falls back to the local breaker's state while degraded, for a manual
        state set on this process, or before the first store call.
        """
        local = breaker.state
        stored = self._observed.get(breaker.name)
        if stored is None or self.degraded or local.value not in _STORED_STATES:
            return local
        return BreakerState(stored.value)

    async def read(self, breaker: CircuitBreaker) -> BreakerRecord | None:
        """Read the breaker's current record from the store, or None.

        None means the breaker is local, a manual state on this process wins,
        or the store cannot be read now (the caller shows the local breaker).
        """
        policy = self._policy_of(breaker.name)
        if policy is None or breaker.state.value not in _STORED_STATES:
            return None
        if not await self._usable():
            return None
        try:
            record = await self._call(self.store.read(breaker.name, policy))
        except (StorageError, TimeoutError) as exc:
            self._degrade(exc)
            return None
        self._observed[breaker.name] = record.state
        return record

    def covers(self, name: str) -> bool:
        """Return True when breaker `name` keeps its state in the store."""
        return self._policy_of(name) is not None

    async def admit(self, breaker: CircuitBreaker) -> Permit:
        """Admit one call through the store, or locally while degraded.

        Raises `CircuitOpenError` when the breaker rejects the call.
        """
        policy = self._policy_of(breaker.name)
        assert policy is not None, "admit() needs a breaker that covers() accepts"
        self._local_breakers[breaker.name] = breaker
        if breaker.state.value not in _STORED_STATES:
            # A manual state (forced open or closed, disabled) set on this
            # process's breaker wins over the shared state.
            return breaker.acquire()
        if not await self._usable():
            return breaker.acquire()

        try:
            admission = await self._call(self.store.acquire(breaker.name, policy))
        except (StorageError, TimeoutError) as exc:
            self._degrade(exc)
            return breaker.acquire()

        self._observed[breaker.name] = admission.state
        if admission.previous is not None:
            self._emit(breaker.name, admission.previous, admission.state)
        if not admission.admitted:
            raise CircuitOpenError(
                breaker.name, admission.state.value, admission.retry_after
            )
        return SharedPermit(generation=admission.generation, probe=admission.probe)

    async def record(
        self, breaker: CircuitBreaker, permit: Permit, outcome: Outcome
    ) -> None:
        """Count an outcome where its permit came from: the store or the breaker.

        An outcome of a store permit that cannot be written is lost; the
        store reclaims a lost probe slot after the policy's `probe_timeout`.
        """
        if not isinstance(permit, SharedPermit):
            breaker.record(permit, outcome)
            return

        policy = self._policy_of(breaker.name)
        assert policy is not None
        try:
            result = await self._call(
                self.store.record(
                    breaker.name,
                    policy,
                    permit.generation,
                    permit.probe,
                    SharedOutcome(outcome.value),
                )
            )
        except (StorageError, TimeoutError) as exc:
            self._degrade(exc)
            return
        self._observed[breaker.name] = result.state
        if result.previous is not None:
            self._emit(breaker.name, result.previous, result.state)

    async def _usable(self) -> bool:
        """Return True when the store may be called; resynchronise after an outage."""
        return await self._outage.usable(self._resync)

    async def _resync(self) -> None:
        await self._call(self.store.check())
        await self._publish_local_opens(list(self._local_breakers.values()))

    async def _publish_local_opens(self, breakers: Iterable[CircuitBreaker]) -> None:
        for breaker in breakers:
            policy = self._policy_of(breaker.name)
            snapshot = breaker.snapshot()
            if policy is None or snapshot.state is not BreakerState.OPEN:
                continue
            await self._call(
                self.store.trip(breaker.name, policy, snapshot.open_remaining)
            )

    def _degrade(self, exc: BaseException) -> None:
        self._outage.fail(exc)

    async def _call(self, awaitable: Awaitable[T]) -> T:
        """Await one store call, raising `TimeoutError` after `timeout` seconds."""
        return await bounded(awaitable, self._timeout)

    def _emit(
        self, name: str, old: SharedBreakerState, new: SharedBreakerState
    ) -> None:
        self._on_change(
            StateChange(
                name=name,
                old=BreakerState(old.value),
                new=BreakerState(new.value),
                at=self._clock.wall(),
                reason=_REASONS.get((old, new), "shared_store"),
            )
        )


_STORED_STATES = frozenset(state.value for state in SharedBreakerState)

_REASONS = {
    (SharedBreakerState.CLOSED, SharedBreakerState.OPEN): "consecutive_failures",
    (SharedBreakerState.OPEN, SharedBreakerState.HALF_OPEN): "open_period_ended",
    (SharedBreakerState.HALF_OPEN, SharedBreakerState.OPEN): "probe_failed",
    (SharedBreakerState.HALF_OPEN, SharedBreakerState.CLOSED): "probes_succeeded",
}
