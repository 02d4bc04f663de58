"""The breaker inside the guard: classification, durations, Retry-After, events,
and 500 concurrent callers against a half-open breaker and a real upstream."""

from __future__ import annotations

import logging
import math
import random
import time
from typing import Any

import anyio
import pytest
from upstream import ScriptedUpstream, delay, status

from faultguard_core import (
    BreakerState,
    Call,
    CallResult,
    CircuitRejectedError,
    FakeClock,
    Guard,
    UpstreamFailedError,
    hookimpl,
    load_settings,
)
from faultguard_core.backoff.strategies import ExponentialBackoff
from faultguard_core.breaker import CallRecorded, CallRejected, StateChange
from faultguard_core.plugin_host import build_plugin_host
from faultguard_core.storage.memory import MemoryStore
from faultguard_core.testing.transport import ScriptedTransport, response

URL = "http://127.0.0.1:9/data"
ORIGIN = "127.0.0.1:9"

pytestmark = pytest.mark.anyio


def make_settings(**breaker: Any) -> Any:
    return load_settings(
        overrides={
            "metrics": {"port": 0, "exporters": []},
            "storage": {"backend": "memory"},
            "plugins": {"autoload": False},
            "retry": {"max_retries": 0},
            "breaker": breaker,
        }
    )


def make_guard(
    transport: ScriptedTransport,
    clock: FakeClock,
    plugins: list[tuple[str, object]] | None = None,
    **breaker: Any,
) -> Guard:
    settings = make_settings(**breaker)
    host = build_plugin_host(settings, extra_plugins=plugins or [])
    return Guard(
        settings,
        store=MemoryStore(),
        transport=transport,
        backoff={"exponential": ExponentialBackoff},
        plugins=host,
        clock=clock,
        rng=random.Random(1),
    )


async def run(guard: Guard, count: int = 1) -> list[CallResult | Exception]:
    results: list[CallResult | Exception] = []
    for _ in range(count):
        try:
            results.append(await guard.execute(Call(key="k", url=URL)))
        except Exception as exc:
            results.append(exc)
    return results


async def test_guard_retry_after_lengthens_open() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(response(503, headers=[("Retry-After", "120")]))
    guard = make_guard(transport, clock, max_failures=1, open_duration=10.0)

    await run(guard)
    breaker = guard.breakers.find(ORIGIN)

    assert breaker is not None
    assert breaker.snapshot().open_remaining == 120.0


async def test_guard_retry_after_ignored_on_500() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(response(500, headers=[("Retry-After", "120")]))
    guard = make_guard(transport, clock, max_failures=1, open_duration=10.0)

    await run(guard)
    breaker = guard.breakers.find(ORIGIN)

    assert breaker is not None
    assert breaker.snapshot().open_remaining == 10.0


async def test_guard_uses_status_classification() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(response(404, b"missing"))
    guard = make_guard(
        transport, clock, max_failures=2, failure_statuses=["5xx", "404"]
    )

    results = await run(guard, 3)

    assert isinstance(results[0], UpstreamFailedError)
    assert isinstance(results[2], CircuitRejectedError)
    assert len(transport.requests) == 2


async def test_guard_excluded_status_delivered_uncounted() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(response(503, b"busy"))
    guard = make_guard(transport, clock, max_failures=1, excluded_statuses=["503"])

    results = await run(guard, 3)

    assert [getattr(result, "status_code", None) for result in results] == [503] * 3
    breaker = guard.breakers.find(ORIGIN)
    assert breaker is not None
    assert breaker.snapshot().window_calls == 0
    assert breaker.state is BreakerState.CLOSED


async def test_guard_passes_attempt_duration() -> None:
    clock = FakeClock()
    seen: list[CallRecorded] = []

    class Recorder:
        @hookimpl
        def faultguard_handle_call_recorded(self, event: CallRecorded) -> None:
            seen.append(event)

    class SlowTransport(ScriptedTransport):
        async def send(self, request: Any, timeout: float) -> Any:
            clock.advance(1.5)
            return await super().send(request, timeout)

    guard = make_guard(
        SlowTransport(response(200)),
        clock,
        plugins=[("recorder", Recorder())],
        trip_policies=["slow_call_rate"],
        slow_call_duration=1.0,
        min_calls=2,
    )

    await run(guard, 2)

    assert [event.duration for event in seen] == [1.5, 1.5]
    assert [event.slow for event in seen] == [True, True]
    breaker = guard.breakers.find(ORIGIN)
    assert breaker is not None
    assert breaker.state is BreakerState.OPEN


async def test_guard_events_reach_plugins_in_order() -> None:
    clock = FakeClock()
    seen: list[str] = []

    class Recorder:
        @hookimpl
        def faultguard_handle_call_recorded(self, event: CallRecorded) -> None:
            seen.append(f"recorded:{event.outcome.value}")

        @hookimpl
        def faultguard_handle_state_change(self, change: StateChange) -> None:
            seen.append(f"state:{change.new.value}:{change.reason}")

        @hookimpl
        def faultguard_handle_call_rejected(self, event: CallRejected) -> None:
            seen.append(f"rejected:{event.state.value}")

    guard = make_guard(
        ScriptedTransport(response(500)),
        clock,
        plugins=[("recorder", Recorder())],
        max_failures=1,
    )

    await run(guard, 2)

    assert seen == [
        "recorded:failure",
        "state:open:consecutive_failures",
        "rejected:open",
    ]


async def test_guard_hook_errors_change_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()

    class Broken:
        @hookimpl
        def faultguard_handle_call_recorded(self, event: CallRecorded) -> None:
            raise RuntimeError("recorded hook broke")

        @hookimpl
        def faultguard_handle_state_change(self, change: StateChange) -> None:
            raise RuntimeError("state hook broke")

        @hookimpl
        def faultguard_handle_call_rejected(self, event: CallRejected) -> None:
            raise RuntimeError("rejected hook broke")

    guard = make_guard(
        ScriptedTransport(response(500)),
        clock,
        plugins=[("broken-plugin", Broken())],
        max_failures=1,
    )

    with caplog.at_level(logging.ERROR, logger="faultguard"):
        results = await run(guard, 2)

    assert isinstance(results[0], UpstreamFailedError)
    assert isinstance(results[1], CircuitRejectedError)
    failures = [r for r in caplog.records if r.message == "plugin_hook_failed"]
    assert {getattr(r, "plugin", None) for r in failures} == {"broken-plugin"}
    assert len(failures) == 3
    breaker = guard.breakers.find(ORIGIN)
    assert breaker is not None
    assert breaker.state is BreakerState.OPEN


async def test_guard_forced_open_rejects_forever() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(response(200))
    guard = make_guard(transport, clock)
    await run(guard)
    breaker = guard.breakers.find(ORIGIN)
    assert breaker is not None

    breaker.force_open()
    clock.advance(3600.0)
    served = await guard.execute(Call(key="k", url=URL))
    with pytest.raises(CircuitRejectedError) as info:
        await guard.execute(Call(key="never-stored", url=URL))

    error = info.value
    assert served.source == "fallback"
    assert error.state == "forced_open"
    assert math.isinf(error.retry_after)
    assert len(transport.requests) == 1


async def test_guard_max_breakers_from_settings() -> None:
    guard = make_guard(ScriptedTransport(response(200)), FakeClock(), max_breakers=2)

    for port in (1, 2, 3):
        await guard.execute(Call(key="k", url=f"http://127.0.0.1:{port}/x"))

    assert [breaker.name for breaker in guard.breakers.all()] == [
        "127.0.0.1:2",
        "127.0.0.1:3",
    ]


PROBES = 3
CALLERS = 500


async def test_half_open_admits_exact_probes() -> None:
    """500 callers hit a half-open breaker, and the upstream gets exactly 3 probes."""
    clock = FakeClock()
    settings = load_settings(
        overrides={
            "metrics": {"port": 0, "exporters": []},
            "storage": {"backend": "memory"},
            "plugins": {"autoload": False},
            "retry": {"max_retries": 0},
            "request": {"max_concurrency": CALLERS * 2, "timeout": "5s"},
            "breaker": {
                "max_failures": 1,
                "open_duration": "10s",
                "half_open_max_calls": PROBES,
            },
        }
    )
    guard = Guard.from_settings(settings, clock=clock, rng=random.Random(2))

    with ScriptedUpstream() as upstream:
        url = upstream.url_for("/probe")
        origin = f"127.0.0.1:{upstream.port}"
        upstream.script("/probe", status(500), delay(0.5))
        async with guard:
            with pytest.raises(UpstreamFailedError):
                await guard.execute(Call(key="trip", url=url))
            clock.advance(10.0)

            outcomes: list[tuple[str, float]] = []

            async def caller(index: int) -> None:
                try:
                    await guard.execute(Call(key=f"k{index}", url=url))
                except CircuitRejectedError as exc:
                    outcomes.append((f"rejected:{exc.state}", time.monotonic()))
                else:
                    outcomes.append(("upstream", time.monotonic()))

            started = time.monotonic()
            async with anyio.create_task_group() as group:
                for index in range(CALLERS):
                    group.start_soon(caller, index)

        hits = upstream.hits["/probe"]

    kinds = [kind for kind, _ in outcomes]
    assert hits == 1 + PROBES
    assert kinds.count("upstream") == PROBES
    assert kinds.count("rejected:half_open") == CALLERS - PROBES
    rejected_by = max(at for kind, at in outcomes if kind != "upstream")
    assert rejected_by - started < 0.5, "a rejected caller waited for the probes"
    breaker = guard.breakers.find(origin)
    assert breaker is not None
    assert breaker.state is BreakerState.CLOSED
