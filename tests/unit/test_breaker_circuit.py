"""The Python API: `Circuit` as decorator and as async context manager."""

from __future__ import annotations

from contextlib import nullcontext

import anyio
import anyio.lowlevel
import pytest

from faultguard_core import (
    BreakerState,
    Circuit,
    CircuitBreaker,
    CircuitOpenError,
    FakeClock,
    Outcome,
    circuit,
)

pytestmark = pytest.mark.anyio


class Boom(Exception):
    """An upstream failure raised by the test code."""


class NotFound(Exception):
    """A business error that must not count against the upstream."""


def make_breaker(**options: object) -> CircuitBreaker:
    options.setdefault("max_failures", 2)
    options.setdefault("open_duration", 10.0)
    return CircuitBreaker("api", clock=FakeClock(), **options)  # type: ignore[arg-type]


async def test_decorator_counts_failures_and_opens() -> None:
    breaker = make_breaker()
    calls = 0

    @circuit(breaker)
    async def fetch() -> str:
        nonlocal calls
        calls += 1
        raise Boom

    for _ in range(2):
        with pytest.raises(Boom):
            await fetch()
    with pytest.raises(CircuitOpenError) as info:
        await fetch()

    assert calls == 2
    assert breaker.state is BreakerState.OPEN
    assert info.value.retry_after == 10.0


async def test_decorator_returns_result() -> None:
    breaker = make_breaker()

    @circuit(breaker)
    async def add(left: int, right: int) -> int:
        return left + right

    assert await add(2, 3) == 5
    assert breaker.snapshot().window_calls == 1


async def test_decorator_is_failure_predicate() -> None:
    breaker = make_breaker()

    @circuit(breaker, is_failure=lambda result: result is None)
    async def lookup() -> None:
        return None

    await lookup()
    await lookup()

    assert breaker.state is BreakerState.OPEN


async def test_context_manager_same_rules() -> None:
    breaker = make_breaker()
    guarded = Circuit(breaker)

    for _ in range(2):
        with pytest.raises(Boom):
            async with guarded:
                raise Boom

    with pytest.raises(CircuitOpenError):
        async with guarded:
            pytest.fail("the body ran while the circuit was open")
    assert breaker.state is BreakerState.OPEN


async def test_context_manager_record_status() -> None:
    breaker = make_breaker()
    guarded = Circuit(breaker)

    async with guarded as call:
        outcome = call.record_status(503, retry_after=30.0)
    async with guarded as call:
        call.record_status(503)

    assert outcome.value == "failure"
    assert breaker.state is BreakerState.OPEN
    assert breaker.snapshot().open_remaining == 30.0


async def test_excluded_and_success_exceptions() -> None:
    breaker = make_breaker(max_failures=1)
    guarded = Circuit(
        breaker, excluded_exceptions=(NotFound,), success_exceptions=(KeyError,)
    )

    with pytest.raises(NotFound):
        async with guarded:
            raise NotFound
    with pytest.raises(KeyError):
        async with guarded:
            raise KeyError("k")

    snapshot = breaker.snapshot()
    assert snapshot.state is BreakerState.CLOSED
    assert snapshot.window_calls == 1


async def test_cancellation_is_excluded() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("api", clock=clock, max_failures=1, open_duration=10.0)
    breaker.record(breaker.acquire(), Outcome.FAILURE)
    clock.advance(10.0)
    guarded = Circuit(breaker)

    with anyio.move_on_after(0.01):
        async with guarded:
            await anyio.sleep(5)

    snapshot = breaker.snapshot()
    assert snapshot.state is BreakerState.HALF_OPEN
    assert snapshot.half_open_in_flight == 0


async def test_shared_circuit_concurrent_tasks() -> None:
    breaker = make_breaker(max_failures=100)
    guarded = Circuit(breaker)
    release = anyio.Event()

    async def work(fail: bool) -> None:
        with pytest.raises(Boom) if fail else nullcontext():
            async with guarded:
                await release.wait()
                if fail:
                    raise Boom

    async with anyio.create_task_group() as group:
        for index in range(10):
            group.start_soon(work, index % 2 == 0)
        await anyio.lowlevel.checkpoint()
        release.set()

    snapshot = breaker.snapshot()
    assert snapshot.window_calls == 10
    assert snapshot.window_failures == 5
    assert snapshot.in_flight == 0


async def test_nested_blocks_keep_own_permits() -> None:
    outer_breaker = make_breaker(max_failures=1)
    inner_breaker = make_breaker(max_failures=1)

    async def nested() -> None:
        async with Circuit(outer_breaker):
            async with Circuit(inner_breaker):
                pass
            raise Boom

    with pytest.raises(Boom):
        await nested()

    assert outer_breaker.state is BreakerState.OPEN
    assert inner_breaker.state is BreakerState.CLOSED
