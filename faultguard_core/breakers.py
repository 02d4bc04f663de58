"""The breakers of one guard, one per configured service or URL origin."""

from __future__ import annotations

from faultguard_core.breaker import (
    BreakerSnapshot,
    CircuitBreaker,
    StateListener,
)
from faultguard_core.clock import Clock
from faultguard_core.settings import BreakerSettings


class BreakerRegistry:
    """The breakers of one guard, created on first use per service or origin."""

    # NOTE: the number of per-origin breakers is not bounded yet; a caller
    # that sends many distinct origins grows this dict without limit.

    def __init__(self, clock: Clock, listener: StateListener) -> None:
        self._clock = clock
        self._listener = listener
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str, settings: BreakerSettings) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(
                name,
                max_failures=settings.max_failures,
                open_duration=settings.open_duration,
                half_open_max_calls=settings.half_open_max_calls,
                clock=self._clock,
                listener=self._listener,
            )
            self._breakers[name] = breaker
        return breaker

    def find(self, name: str) -> CircuitBreaker | None:
        return self._breakers.get(name)

    def snapshots(self) -> list[BreakerSnapshot]:
        return [breaker.snapshot() for breaker in list(self._breakers.values())]
