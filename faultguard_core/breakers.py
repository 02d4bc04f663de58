"""The breakers of one guard, one per configured service or URL origin.

Breakers of configured services live as long as the registry. Per-origin
breakers (calls without a `service`) are bounded by `breaker.max_breakers`:
adding one to a full registry evicts the least recently used per-origin
breaker that is closed and has no call in flight. Open, half-open and
manually set breakers are never evicted. When no breaker can be evicted, the
new origin gets a breaker that is not kept, so its counts last one call.

An evicted breaker loses its consecutive-failure count and its window; the
next call to that origin starts a fresh closed breaker. A closed breaker
holds no open-period growth, so nothing else is lost.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import OrderedDict
from collections.abc import Callable

from faultguard_core.breaker import (
    BreakerListener,
    BreakerSnapshot,
    BreakerState,
    CircuitBreaker,
)
from faultguard_core.clock import Clock
from faultguard_core.settings import BreakerSettings

logger = logging.getLogger("faultguard")

FULL_LOG_INTERVAL = 60.0
"""Seconds between two `breaker_registry_full` log lines."""


class BreakerRegistry:
    """The breakers of one guard, created on first use per service or origin.

    Safe to read from other threads (the metrics scrape thread calls
    `snapshots`).
    """

    def __init__(
        self,
        clock: Clock,
        listener: BreakerListener,
        *,
        max_breakers: int = 1000,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._listener = listener
        self._rng = rng or random.Random()
        self.max_breakers = max_breakers
        self._lock = threading.Lock()
        self._services: dict[str, CircuitBreaker] = {}
        self._origins: OrderedDict[str, CircuitBreaker] = OrderedDict()
        self._evictions = 0
        self._unkept = 0
        self._full_logged_at: float | None = None

    def get(
        self, name: str, settings: BreakerSettings, *, service: bool = False
    ) -> CircuitBreaker:
        """Return the breaker `name`, creating it with `settings` if needed.

        `service` is True for a configured service, whose breaker is never
        evicted. Settings of an existing breaker change only through
        `reconfigure`.
        """
        with self._lock:
            table = self._services if service else self._origins
            breaker = table.get(name)
            if breaker is not None:
                if not service:
                    self._origins.move_to_end(name)
                return breaker

            breaker = self._build(name, settings)
            if service:
                self._services[name] = breaker
            elif self._make_room():
                self._origins[name] = breaker
            else:
                self._unkept += 1
                self._log_full()
            return breaker

    def _build(self, name: str, settings: BreakerSettings) -> CircuitBreaker:
        return CircuitBreaker(
            name,
            settings,
            clock=self._clock,
            listener=self._listener,
            rng=self._rng,
        )

    def _make_room(self) -> bool:
        """Evict until a per-origin breaker fits; False if none can go."""
        while len(self._origins) >= self.max_breakers:
            victim = next(
                (name for name, breaker in self._origins.items() if breaker.is_idle()),
                None,
            )
            if victim is None:
                return False
            del self._origins[victim]
            self._evictions += 1
        return True

    def _log_full(self) -> None:
        now = self._clock.monotonic()
        if (
            self._full_logged_at is not None
            and now - self._full_logged_at < FULL_LOG_INTERVAL
        ):
            return
        self._full_logged_at = now
        logger.warning(
            "breaker_registry_full",
            extra={"max_breakers": self.max_breakers, "unkept_total": self._unkept},
        )

    def find(self, name: str) -> CircuitBreaker | None:
        """Return the breaker `name` if it exists, without touching its LRU age."""
        with self._lock:
            return self._services.get(name) or self._origins.get(name)

    def all(self) -> list[CircuitBreaker]:
        """Return every kept breaker, services first."""
        with self._lock:
            return [*self._services.values(), *self._origins.values()]

    def snapshots(self) -> list[BreakerSnapshot]:
        return [breaker.snapshot() for breaker in self.all()]

    @property
    def evictions(self) -> int:
        """Per-origin breakers evicted so far."""
        return self._evictions

    def reconfigure(
        self,
        settings_for: Callable[[str, bool], BreakerSettings],
        max_breakers: int,
    ) -> None:
        """Give every breaker new settings, keeping its state and counts.

        `settings_for(name, is_service)` returns a breaker's new settings.
        A lower `max_breakers` evicts idle closed per-origin breakers at once;
        busy or open ones stay until they can go.
        """
        with self._lock:
            self.max_breakers = max_breakers
            services = list(self._services.items())
            origins = list(self._origins.items())
        for name, breaker in services:
            breaker.reconfigure(settings_for(name, True))
        for name, breaker in origins:
            breaker.reconfigure(settings_for(name, False))
        with self._lock:
            for name, breaker in list(self._origins.items()):
                if len(self._origins) <= max_breakers:
                    break
                if breaker.is_idle():
                    del self._origins[name]
                    self._evictions += 1

    def manual_states(self) -> dict[str, BreakerState]:
        """Return the breakers in a manual state, by name."""
        states = {}
        for breaker in self.all():
            state = breaker.state
            if state.manual:
                states[breaker.name] = state
        return states
