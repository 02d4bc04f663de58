"""The breaker registry: per-service and per-origin breakers, bounded by LRU."""

from __future__ import annotations

import logging

import pytest

from faultguard_core.breaker import BreakerEvent, BreakerState, Outcome
from faultguard_core.breakers import BreakerRegistry
from faultguard_core.clock import FakeClock
from faultguard_core.settings import BreakerSettings

SETTINGS = BreakerSettings(max_failures=1, open_duration=30.0)


def make_registry(max_breakers: int = 3) -> BreakerRegistry:
    events: list[BreakerEvent] = []
    return BreakerRegistry(FakeClock(), events.append, max_breakers=max_breakers)


def test_registry_reuses_breaker() -> None:
    registry = make_registry()

    first = registry.get("a:80", SETTINGS)
    second = registry.get("a:80", SETTINGS)

    assert first is second


def test_registry_evicts_least_recent_idle() -> None:
    registry = make_registry(max_breakers=3)
    for name in ("a:80", "b:80", "c:80"):
        registry.get(name, SETTINGS)
    registry.get("a:80", SETTINGS)

    registry.get("d:80", SETTINGS)

    names = {breaker.name for breaker in registry.all()}
    assert names == {"a:80", "c:80", "d:80"}
    assert registry.evictions == 1


def test_registry_never_evicts_open() -> None:
    registry = make_registry(max_breakers=2)
    opened = registry.get("a:80", SETTINGS)
    opened.record(opened.acquire(), Outcome.FAILURE)
    registry.get("b:80", SETTINGS)

    registry.get("c:80", SETTINGS)

    names = {breaker.name for breaker in registry.all()}
    assert names == {"a:80", "c:80"}
    assert registry.find("a:80") is opened


def test_registry_never_evicts_busy_or_forced() -> None:
    registry = make_registry(max_breakers=2)
    busy = registry.get("a:80", SETTINGS)
    busy.acquire()
    forced = registry.get("b:80", SETTINGS)
    forced.force_close()

    extra = registry.get("c:80", SETTINGS)

    names = {breaker.name for breaker in registry.all()}
    assert names == {"a:80", "b:80"}
    assert extra.name == "c:80"
    assert registry.find("c:80") is None


def test_registry_full_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    registry = make_registry(max_breakers=1)
    registry.get("a:80", SETTINGS).force_open()

    with caplog.at_level(logging.WARNING, logger="faultguard"):
        for index in range(5):
            registry.get(f"new{index}:80", SETTINGS)

    messages = [record.message for record in caplog.records]
    assert messages.count("breaker_registry_full") == 1


def test_registry_services_not_bounded() -> None:
    registry = make_registry(max_breakers=1)
    registry.get("payments", SETTINGS, service=True)
    registry.get("billing", SETTINGS, service=True)

    registry.get("a:80", SETTINGS)
    registry.get("b:80", SETTINGS)

    names = {breaker.name for breaker in registry.all()}
    assert names == {"payments", "billing", "b:80"}


def test_registry_evicted_breaker_starts_fresh() -> None:
    registry = make_registry(max_breakers=1)
    first = registry.get("a:80", BreakerSettings(max_failures=3))
    first.record(first.acquire(), Outcome.FAILURE)
    registry.get("b:80", SETTINGS)

    again = registry.get("a:80", BreakerSettings(max_failures=3))

    assert again is not first
    assert again.snapshot().consecutive_failures == 0


def test_registry_reconfigure_keeps_state() -> None:
    registry = make_registry(max_breakers=5)
    service = registry.get("payments", SETTINGS, service=True)
    service.force_open()
    origin = registry.get("a:80", BreakerSettings(max_failures=5))
    origin.record(origin.acquire(), Outcome.FAILURE)

    registry.reconfigure(
        lambda name, is_service: BreakerSettings(max_failures=2), max_breakers=5
    )

    assert service.state is BreakerState.FORCED_OPEN
    assert origin.settings.max_failures == 2
    assert origin.snapshot().consecutive_failures == 1
    assert registry.manual_states() == {"payments": BreakerState.FORCED_OPEN}


def test_registry_reconfigure_lower_bound_evicts() -> None:
    registry = make_registry(max_breakers=4)
    for name in ("a:80", "b:80", "c:80"):
        registry.get(name, SETTINGS)

    registry.reconfigure(lambda name, is_service: SETTINGS, max_breakers=1)

    assert [breaker.name for breaker in registry.all()] == ["c:80"]
