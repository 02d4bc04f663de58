"""Guard: retries, deadlines, breaker interplay and fallback, on a fake clock."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from faultguard_core import (
    BreakerState,
    Call,
    CircuitRejectedError,
    DeadlineExceededError,
    FakeClock,
    Guard,
    UpstreamFailedError,
    hookimpl,
    load_settings,
)
from faultguard_core.backoff.base import BackoffFactory, BackoffStrategy
from faultguard_core.backoff.strategies import ExponentialBackoff
from faultguard_core.breaker import CircuitBreaker
from faultguard_core.bulkhead import BulkheadRejectedError
from faultguard_core.clock import SystemClock
from faultguard_core.exporters.base import MetricsExporter
from faultguard_core.plugin_host import build_plugin_host
from faultguard_core.retry import UpstreamBusyError
from faultguard_core.retry_after import format_http_date
from faultguard_core.settings import RetrySettings
from faultguard_core.storage.base import EntryKey
from faultguard_core.storage.memory import MemoryStore
from faultguard_core.testing.transport import HANG, ScriptedTransport, response
from faultguard_core.transport.base import (
    PoolTimeoutError,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)

URL = "http://127.0.0.1:9/data"

pytestmark = pytest.mark.anyio


def make_guard(
    transport: ScriptedTransport, clock: FakeClock | None = None, **overrides: Any
) -> Guard:
    settings = load_settings(
        overrides={
            "metrics": {"port": 0},
            "storage": {"backend": "memory"},
            **overrides,
        }
    )
    return Guard(
        settings,
        store=MemoryStore(),
        transport=transport,
        backoff={"exponential": ExponentialBackoff},
        clock=clock or FakeClock(),
        rng=random.Random(7),
    )


async def test_success_is_delivered_and_stored() -> None:
    transport = ScriptedTransport(response(200, b"fresh"))
    guard = make_guard(transport)

    result = await guard.execute(Call(key="k", url=URL))

    assert result.source == "upstream"
    assert result.body == b"fresh"
    assert result.attempts == 1
    stored = await guard.store.get(EntryKey("k", "GET", URL))
    assert stored is not None
    assert stored.body == b"fresh"


async def test_non_2xx_success_is_delivered_not_stored() -> None:
    transport = ScriptedTransport(response(404, b"missing"))
    guard = make_guard(transport)

    result = await guard.execute(Call(key="k", url=URL))

    assert result.status_code == 404
    assert result.source == "upstream"
    assert await guard.store.get(EntryKey("k", "GET", URL)) is None


async def test_retries_then_succeeds() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(response(503), response(502), response(200))
    guard = make_guard(transport, clock)

    result = await guard.execute(Call(key="k", url=URL))

    assert result.status_code == 200
    assert result.attempts == 3
    assert len(clock.sleeps) == 2
    assert all(0 <= delay <= 10.0 for delay in clock.sleeps)


async def test_gives_up_after_max_retries() -> None:
    transport = ScriptedTransport(response(503))
    guard = make_guard(transport, retry={"max_retries": 2})

    with pytest.raises(UpstreamFailedError) as caught:
        await guard.execute(Call(key="k", url=URL))

    assert caught.value.attempts == 3
    assert caught.value.upstream_status == 503
    assert len(transport.requests) == 3


async def test_failure_serves_stored_fallback() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(response(200, b"good"))
    guard = make_guard(transport, clock, retry={"max_retries": 0})
    await guard.execute(Call(key="k", url=URL))
    clock.advance(42)
    transport.script(response(500))

    result = await guard.execute(Call(key="k", url=URL))

    assert result.source == "fallback"
    assert result.body == b"good"
    assert result.status_code == 200
    assert result.age_seconds == pytest.approx(42)


async def test_fallback_needs_same_key_method_url() -> None:
    transport = ScriptedTransport(response(200, b"good"))
    guard = make_guard(transport, retry={"max_retries": 0})
    await guard.execute(Call(key="k", url=URL))
    transport.script(response(500))

    for call in (
        Call(key="other", url=URL),
        Call(key="k", url=URL + "?x=1"),
        Call(key="k", url=URL, method="HEAD"),
        Call(key="k", url=URL, headers=(("Authorization", "Bearer b"),)),
    ):
        with pytest.raises(UpstreamFailedError):
            await guard.execute(call)


async def test_breaker_opening_stops_retries_without_sleep() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(response(503))
    guard = make_guard(
        transport, clock, breaker={"max_failures": 2}, retry={"max_retries": 5}
    )

    with pytest.raises(UpstreamFailedError) as caught:
        await guard.execute(Call(key="k", url=URL))

    assert caught.value.attempts == 2
    assert caught.value.state == "open"
    assert len(clock.sleeps) == 1


async def test_open_breaker_rejects_without_upstream_hit() -> None:
    transport = ScriptedTransport(response(500))
    guard = make_guard(transport, breaker={"max_failures": 1})
    with pytest.raises(UpstreamFailedError):
        await guard.execute(Call(key="k", url=URL))
    sent = len(transport.requests)

    with pytest.raises(CircuitRejectedError) as caught:
        await guard.execute(Call(key="k", url=URL))

    assert len(transport.requests) == sent
    assert caught.value.attempts == 0
    assert caught.value.retry_after == pytest.approx(30.0)


async def test_open_breaker_serves_fallback() -> None:
    transport = ScriptedTransport(response(200, b"good"))
    guard = make_guard(transport, breaker={"max_failures": 1})
    await guard.execute(Call(key="k", url=URL))
    transport.script(response(500))
    await guard.execute(Call(key="k", url=URL))
    sent = len(transport.requests)

    result = await guard.execute(Call(key="k", url=URL))

    assert result.source == "fallback"
    assert result.state is BreakerState.OPEN
    assert len(transport.requests) == sent


async def test_probe_after_open_duration_closes() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(response(500))
    guard = make_guard(transport, clock, breaker={"max_failures": 1})
    with pytest.raises(UpstreamFailedError):
        await guard.execute(Call(key="k", url=URL))
    clock.advance(30)
    transport.script(response(200))

    result = await guard.execute(Call(key="k", url=URL))

    assert result.source == "upstream"
    assert result.state is BreakerState.CLOSED


async def test_post_not_retried_after_failure() -> None:
    transport = ScriptedTransport(response(503))
    guard = make_guard(transport)

    with pytest.raises(UpstreamFailedError):
        await guard.execute(Call(key="k", url=URL, method="POST", body=b"{}"))

    assert len(transport.requests) == 1


async def test_post_retried_with_idempotency_key() -> None:
    transport = ScriptedTransport(response(503), response(200))
    guard = make_guard(transport)
    headers = (("Idempotency-Key", "abc"),)

    result = await guard.execute(Call(key="k", url=URL, method="POST", headers=headers))

    assert result.attempts == 2
    sent_keys = [dict(req.headers)["Idempotency-Key"] for req, _ in transport.requests]
    assert sent_keys == ["abc", "abc"]


async def test_post_retried_when_connection_refused() -> None:
    transport = ScriptedTransport(UpstreamConnectError("refused"), response(200))
    guard = make_guard(transport)

    result = await guard.execute(Call(key="k", url=URL, method="POST"))

    assert result.attempts == 2


async def test_deadline_bounds_attempt_timeout() -> None:
    transport = ScriptedTransport(response(200))
    guard = make_guard(transport, request={"timeout": "2s", "deadline": "10s"})

    await guard.execute(Call(key="k", url=URL, timeout=0.5))

    assert transport.requests[0][1] == pytest.approx(0.5)


async def test_call_timeout_never_lengthens_deadline() -> None:
    transport = ScriptedTransport(response(200))
    guard = make_guard(transport, request={"timeout": "20s", "deadline": "3s"})

    await guard.execute(Call(key="k", url=URL, timeout=60))

    assert transport.requests[0][1] == pytest.approx(3.0)


async def test_no_attempt_starts_after_deadline() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(UpstreamTimeoutError("slow"))
    guard = make_guard(
        transport,
        clock,
        request={"timeout": "1s", "deadline": "1s"},
        retry={"base_delay": "2s", "max_delay": "2s", "jitter": "none"},
    )

    with pytest.raises(DeadlineExceededError) as caught:
        await guard.execute(Call(key="k", url=URL))

    assert caught.value.attempts == 1
    assert clock.sleeps == []


async def test_retry_after_lengthens_backoff() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(
        response(503, headers=(("Retry-After", "3"),)), response(200)
    )
    guard = make_guard(transport, clock, retry={"jitter": "none"})

    await guard.execute(Call(key="k", url=URL))

    assert clock.sleeps == [3.0]


async def test_cancelled_call_is_excluded_from_breaker() -> None:
    transport = ScriptedTransport(HANG)
    guard = make_guard(transport, breaker={"max_failures": 1})

    with anyio.move_on_after(0.05):
        await guard.execute(Call(key="k", url=URL))

    breaker = guard.breakers.find("127.0.0.1:9")
    assert breaker is not None
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().consecutive_failures == 0


async def test_hop_by_hop_headers_not_forwarded() -> None:
    transport = ScriptedTransport(response(200))
    guard = make_guard(transport)
    headers = (("Connection", "close"), ("X-Trace", "1"), ("Host", "evil"))

    await guard.execute(Call(key="k", url=URL, headers=headers))

    sent = dict(transport.requests[0][0].headers)
    assert sent == {"X-Trace": "1"}


async def test_set_cookie_never_replayed_from_fallback() -> None:
    headers = (("content-type", "text/plain"), ("Set-Cookie", "session=secret"))
    transport = ScriptedTransport(response(200, b"good", headers))
    guard = make_guard(transport, retry={"max_retries": 0})
    await guard.execute(Call(key="k", url=URL))
    transport.script(response(500))

    result = await guard.execute(Call(key="k", url=URL))

    names = {name.lower() for name, _ in result.headers}
    assert "set-cookie" not in names
    assert "content-type" in names


# Retry rules, Retry-After, deadlines, budgets and bulkheads.


class RecordingExporter(MetricsExporter):
    """Counts every exporter call by method name."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.outcomes: list[str] = []

    def retry_sent(self, service: str) -> None:
        self.counts["retry_sent"] += 1

    def retry_refused(self, service: str) -> None:
        self.counts["retry_refused"] += 1

    def bulkhead_rejected(self, service: str) -> None:
        self.counts["bulkhead_rejected"] += 1

    def pool_timed_out(self, service: str) -> None:
        self.counts["pool_timed_out"] += 1

    def deadline_expired(self, service: str) -> None:
        self.counts["deadline_expired"] += 1

    def attempt_failed(self, service: str, reason: str) -> None:
        self.counts["attempt_failed"] += 1

    def call_finished(
        self, service: str, source: str, outcome: str, duration: float
    ) -> None:
        self.outcomes.append(outcome)


def recorded_guard(
    transport: ScriptedTransport, clock: FakeClock | None = None, **overrides: Any
) -> tuple[Guard, RecordingExporter]:
    guard = make_guard(transport, clock, **overrides)
    exporter = RecordingExporter()
    guard.exporters.append(exporter)
    return guard, exporter


def breaker_of(guard: Guard) -> CircuitBreaker:
    breaker = guard.breakers.find("127.0.0.1:9")
    assert breaker is not None
    return breaker


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_default_retried_status(status: int) -> None:
    transport = ScriptedTransport(response(status), response(200))
    guard = make_guard(transport)

    result = await guard.execute(Call(key="k", url=URL))

    assert result.attempts == 2


@pytest.mark.parametrize("status", [500, 501, 408])
async def test_default_not_retried_status(status: int) -> None:
    transport = ScriptedTransport(response(status), response(200))
    guard = make_guard(transport)

    with pytest.raises(UpstreamFailedError) as caught:
        await guard.execute(Call(key="k", url=URL))

    assert caught.value.attempts == 1
    assert caught.value.upstream_status == status


async def test_on_status_configurable() -> None:
    transport = ScriptedTransport(response(500), response(200))
    guard = make_guard(transport, retry={"on_status": [500]})

    result = await guard.execute(Call(key="k", url=URL))

    assert result.attempts == 2


async def test_on_status_retries_non_failure() -> None:
    transport = ScriptedTransport(response(409, b"busy"))
    guard = make_guard(transport, retry={"on_status": [409], "max_retries": 2})

    result = await guard.execute(Call(key="k", url=URL))

    assert result.status_code == 409
    assert result.source == "upstream"
    assert result.attempts == 3


async def test_protocol_error_not_retried_by_default() -> None:
    transport = ScriptedTransport(UpstreamProtocolError("reset"), response(200))
    guard = make_guard(transport)

    with pytest.raises(UpstreamFailedError) as caught:
        await guard.execute(Call(key="k", url=URL))

    assert caught.value.attempts == 1


async def test_on_errors_configurable() -> None:
    transport = ScriptedTransport(UpstreamProtocolError("reset"), response(200))
    guard = make_guard(transport, retry={"on_errors": ["protocol"]})

    result = await guard.execute(Call(key="k", url=URL))

    assert result.attempts == 2


async def test_on_errors_without_connect() -> None:
    transport = ScriptedTransport(UpstreamConnectError("refused"), response(200))
    guard = make_guard(transport, retry={"on_errors": ["timeout"]})

    with pytest.raises(UpstreamFailedError):
        await guard.execute(Call(key="k", url=URL))

    assert len(transport.requests) == 1


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_non_idempotent_timeout_not_retried(method: str) -> None:
    transport = ScriptedTransport(UpstreamTimeoutError("slow"), response(200))
    guard = make_guard(transport)

    with pytest.raises(UpstreamFailedError):
        await guard.execute(Call(key="k", url=URL, method=method))

    assert len(transport.requests) == 1


async def test_post_retried_when_nothing_sent() -> None:
    unsent = UpstreamTimeoutError("connect timed out")
    unsent.request_sent = False
    transport = ScriptedTransport(unsent, response(200))
    guard = make_guard(transport)

    result = await guard.execute(Call(key="k", url=URL, method="POST"))

    assert result.attempts == 2


async def test_service_opts_into_post_retries() -> None:
    transport = ScriptedTransport(response(503), response(200))
    guard = make_guard(
        transport,
        services={"pay": {"retry": {"retry_non_idempotent": True}}},
    )

    result = await guard.execute(Call(key="k", url=URL, method="POST", service="pay"))

    assert result.attempts == 2


async def test_service_overrides_on_status() -> None:
    transport = ScriptedTransport(response(503), response(200))
    guard = make_guard(transport, services={"pay": {"retry": {"on_status": [429]}}})

    with pytest.raises(UpstreamFailedError):
        await guard.execute(Call(key="k", url=URL, service="pay"))

    assert len(transport.requests) == 1


async def test_replay_safety_passed_to_transport() -> None:
    transport = ScriptedTransport(response(200))
    guard = make_guard(transport)

    await guard.execute(Call(key="a", url=URL))
    await guard.execute(Call(key="b", url=URL, method="POST"))
    keyed = (("Idempotency-Key", "k1"),)
    await guard.execute(Call(key="c", url=URL, method="POST", headers=keyed))

    assert [req.replay_safe for req, _ in transport.requests] == [True, False, True]


async def test_retry_after_http_date() -> None:
    clock = FakeClock()
    when = format_http_date(clock.wall() + 4)
    transport = ScriptedTransport(
        response(429, headers=(("Retry-After", when),)), response(200)
    )
    guard = make_guard(transport, clock, retry={"jitter": "none"})

    await guard.execute(Call(key="k", url=URL))

    assert clock.sleeps == [pytest.approx(4.0, abs=1.0)]
    assert clock.sleeps[0] >= 3.0


@pytest.mark.parametrize(
    "value", ["-5", "1.5", "soon", "", "99999999999999999999", "Wed, 32 Oct 2015"]
)
async def test_retry_after_invalid_uses_backoff(value: str) -> None:
    clock = FakeClock()
    transport = ScriptedTransport(
        response(503, headers=(("Retry-After", value),)), response(200)
    )
    guard = make_guard(transport, clock, retry={"jitter": "none"})

    result = await guard.execute(Call(key="k", url=URL))

    assert result.attempts == 2
    assert clock.sleeps == [pytest.approx(0.1)]


async def test_retry_after_ignored_on_502() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(
        response(502, headers=(("Retry-After", "5"),)), response(200)
    )
    guard = make_guard(transport, clock, retry={"jitter": "none"})

    await guard.execute(Call(key="k", url=URL))

    assert clock.sleeps == [pytest.approx(0.1)]


async def test_retry_after_capped_by_setting() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(
        response(503, headers=(("Retry-After", "8"),)), response(200)
    )
    guard = make_guard(
        transport,
        clock,
        retry={"jitter": "none", "max_retry_after": "2s"},
        request={"deadline": "60s"},
    )

    await guard.execute(Call(key="k", url=URL))

    assert clock.sleeps == [2.0]


async def test_retry_after_past_deadline_ends_call() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(
        response(503, headers=(("Retry-After", "60"),)), response(200)
    )
    guard = make_guard(transport, clock)

    with pytest.raises(UpstreamBusyError) as caught:
        await guard.execute(Call(key="k", url=URL))

    assert caught.value.retry_after == 60.0
    assert caught.value.upstream_status == 503
    assert clock.sleeps == []
    assert len(transport.requests) == 1


async def test_retry_after_past_deadline_serves_fallback() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(response(200, b"good"))
    guard = make_guard(transport, clock)
    await guard.execute(Call(key="k", url=URL))
    transport.script(response(429, headers=(("Retry-After", "3600"),)))

    result = await guard.execute(Call(key="k", url=URL))

    assert result.source == "fallback"
    assert clock.sleeps == []


async def test_attempt_timeout_cut_to_remaining() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(response(503), response(200))
    guard = make_guard(
        transport,
        clock,
        request={"timeout": "2s", "deadline": "2.5s"},
        retry={"jitter": "none", "base_delay": "1s"},
    )

    await guard.execute(Call(key="k", url=URL))

    timeouts = [timeout for _, timeout in transport.requests]
    assert timeouts == [pytest.approx(2.0), pytest.approx(1.5)]


async def test_no_retry_without_min_attempt_time() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(response(503), response(200))
    guard, exporter = recorded_guard(
        transport,
        clock,
        request={"timeout": "1s", "deadline": "1s", "min_attempt_time": "0.5s"},
        retry={"jitter": "none", "base_delay": "0.6s"},
    )

    with pytest.raises(DeadlineExceededError):
        await guard.execute(Call(key="k", url=URL))

    assert clock.sleeps == []
    assert len(transport.requests) == 1
    assert exporter.counts["deadline_expired"] == 1


async def test_call_timeout_below_min_attempt() -> None:
    transport = ScriptedTransport(response(200))
    guard = make_guard(transport, request={"min_attempt_time": "100ms"})

    with pytest.raises(DeadlineExceededError) as caught:
        await guard.execute(Call(key="k", url=URL, timeout=0.05))

    assert caught.value.attempts == 0
    assert transport.requests == []


async def test_deadline_cut_timeout_excluded_from_breaker() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(UpstreamTimeoutError("slow"))
    guard, exporter = recorded_guard(
        transport, clock, breaker={"max_failures": 1}, request={"timeout": "5s"}
    )

    with pytest.raises(DeadlineExceededError):
        await guard.execute(Call(key="k", url=URL, timeout=1.0))

    assert breaker_of(guard).state is BreakerState.CLOSED
    assert breaker_of(guard).snapshot().consecutive_failures == 0
    assert exporter.counts["attempt_failed"] == 0
    assert exporter.counts["deadline_expired"] == 1
    assert exporter.outcomes == ["deadline"]


async def test_retry_budget_refuses_retry() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(response(503))
    guard, exporter = recorded_guard(
        transport,
        clock,
        breaker={"max_failures": 1000},
        retry={"budget_ratio": 0.2, "budget_min_per_second": 0, "max_retries": 3},
    )

    for _ in range(10):
        with pytest.raises(UpstreamFailedError):
            await guard.execute(Call(key="k", url=URL))

    # Ten calls allow two retries in the window: 10 first attempts + 2 retries.
    # Every call ends on a refused retry, as max_retries is never reached.
    assert len(transport.requests) == 12
    assert exporter.counts["retry_sent"] == 2
    assert exporter.counts["retry_refused"] == 10


async def test_retry_budget_refusal_message() -> None:
    transport = ScriptedTransport(response(503))
    guard = make_guard(transport, retry={"budget_ratio": 0, "budget_min_per_second": 0})

    with pytest.raises(UpstreamFailedError) as caught:
        await guard.execute(Call(key="k", url=URL))

    assert "retry budget" in str(caught.value)
    assert caught.value.attempts == 1


async def test_retry_budget_refusal_serves_fallback() -> None:
    transport = ScriptedTransport(response(200, b"good"))
    guard = make_guard(transport, retry={"budget_ratio": 0, "budget_min_per_second": 0})
    await guard.execute(Call(key="k", url=URL))
    transport.script(response(503))

    result = await guard.execute(Call(key="k", url=URL))

    assert result.source == "fallback"


async def test_retry_sent_counts_only_retries() -> None:
    transport = ScriptedTransport(response(503), response(502), response(200))
    guard, exporter = recorded_guard(transport)

    await guard.execute(Call(key="k", url=URL))

    assert exporter.counts["retry_sent"] == 2
    assert exporter.counts["attempt_failed"] == 2


async def test_bulkhead_rejects_overflow() -> None:
    transport = ScriptedTransport(HANG)
    guard, exporter = recorded_guard(
        transport, breaker={"max_failures": 1}, request={"max_concurrency": 2}
    )

    async with anyio.create_task_group() as group:
        for number in range(2):
            group.start_soon(guard.execute, Call(key=f"k{number}", url=URL))
        await anyio.wait_all_tasks_blocked()

        with pytest.raises(BulkheadRejectedError) as caught:
            await guard.execute(Call(key="k9", url=URL))
        group.cancel_scope.cancel()

    assert caught.value.limit == 2
    assert caught.value.attempts == 0
    assert len(transport.requests) == 2
    assert exporter.counts["bulkhead_rejected"] == 1
    assert breaker_of(guard).snapshot().consecutive_failures == 0


async def test_bulkhead_rejection_serves_fallback() -> None:
    transport = ScriptedTransport(response(200, b"good"))
    guard = make_guard(transport, request={"max_concurrency": 1})
    await guard.execute(Call(key="k", url=URL))
    transport.script(HANG)

    async with anyio.create_task_group() as group:
        group.start_soon(guard.execute, Call(key="other", url=URL))
        await anyio.wait_all_tasks_blocked()
        result = await guard.execute(Call(key="k", url=URL))
        group.cancel_scope.cancel()

    assert result.source == "fallback"
    assert result.attempts == 0


async def test_bulkhead_queue_admits_after_release() -> None:
    transport = ScriptedTransport(response(200))
    guard = make_guard(transport, request={"max_concurrency": 1, "queue_timeout": "5s"})
    bulkhead = guard.limits.bulkhead("127.0.0.1:9", guard.policy(None).request)
    await bulkhead.acquire(0)
    results = []

    async def call() -> None:
        results.append(await guard.execute(Call(key="k", url=URL)))

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        assert results == []
        bulkhead.release()

    assert results[0].status_code == 200


async def test_bulkhead_slot_released_after_call() -> None:
    transport = ScriptedTransport(response(503), UpstreamConnectError("x"))
    guard = make_guard(
        transport, breaker={"max_failures": 100}, request={"max_concurrency": 1}
    )

    for _ in range(3):
        with pytest.raises(UpstreamFailedError):
            await guard.execute(Call(key="k", url=URL))

    bulkhead = guard.limits.bulkhead("127.0.0.1:9", guard.policy(None).request)
    assert bulkhead.active == 0


async def test_pool_timeout_not_upstream_failure() -> None:
    transport = ScriptedTransport(PoolTimeoutError("pool full"), response(200))
    guard, exporter = recorded_guard(transport, breaker={"max_failures": 1})

    with pytest.raises(BulkheadRejectedError):
        await guard.execute(Call(key="k", url=URL))

    assert breaker_of(guard).state is BreakerState.CLOSED
    assert exporter.counts["pool_timed_out"] == 1
    assert exporter.counts["attempt_failed"] == 0
    assert len(transport.requests) == 1


async def test_cancel_releases_half_open_probe() -> None:
    clock = FakeClock()
    transport = ScriptedTransport(response(503))
    guard, exporter = recorded_guard(
        transport, clock, breaker={"max_failures": 1}, retry={"max_retries": 0}
    )
    with pytest.raises(UpstreamFailedError):
        await guard.execute(Call(key="k", url=URL))
    clock.advance(30)
    transport.script(HANG)

    with anyio.move_on_after(0.05):
        await guard.execute(Call(key="k", url=URL))

    snapshot = breaker_of(guard).snapshot()
    assert snapshot.state is BreakerState.HALF_OPEN
    assert snapshot.half_open_in_flight == 0
    assert exporter.outcomes[-1] == "cancelled"


async def test_cancel_during_backoff_stops_attempts() -> None:
    transport = ScriptedTransport(response(503), response(200))
    guard, exporter = recorded_guard(
        transport,
        clock=None,
        retry={"base_delay": "5s", "max_delay": "5s", "jitter": "none"},
    )
    guard.clock = SystemClock()

    with anyio.move_on_after(0.1):
        await guard.execute(Call(key="k", url=URL))

    assert len(transport.requests) == 1
    assert exporter.counts["retry_sent"] == 0
    assert exporter.outcomes == ["cancelled"]


async def test_third_party_backoff_selected_by_name() -> None:
    class HalfSecond(BackoffStrategy):
        def __init__(self, settings: RetrySettings, rng: random.Random) -> None:
            pass

        def next_delay(self, retry: int) -> float:
            return 0.5

    class Plugin:
        @hookimpl
        def faultguard_register_backoff_strategies(
            self, register: Callable[[str, BackoffFactory], None]
        ) -> None:
            register("half-second", HalfSecond)

    settings = load_settings(
        overrides={
            "metrics": {"port": 0},
            "storage": {"backend": "memory"},
            "retry": {"backoff": "half-second"},
        }
    )
    host = build_plugin_host(settings, extra_plugins=[("third-party", Plugin())])
    clock = FakeClock()
    guard = Guard.from_settings(settings, plugins=host, clock=clock)
    guard.transport = ScriptedTransport(response(503), response(503), response(200))

    result = await guard.execute(Call(key="k", url=URL))

    assert result.attempts == 3
    assert clock.sleeps == [0.5, 0.5]
    assert host.backoff_strategies.names()["half-second"] == "third-party"


async def test_fallback_outcome_names_its_reason() -> None:
    transport = ScriptedTransport(response(200, b"good"))
    guard, exporter = recorded_guard(
        transport, breaker={"max_failures": 1}, retry={"max_retries": 0}
    )
    await guard.execute(Call(key="k", url=URL))
    transport.script(response(503))

    failed = await guard.execute(Call(key="k", url=URL))
    rejected = await guard.execute(Call(key="k", url=URL))

    assert failed.fallback_reason == "upstream_failed"
    assert rejected.fallback_reason == "circuit_open"
    assert exporter.outcomes == ["success", "failure", "rejected"]


async def test_connection_nominated_headers_dropped() -> None:
    transport = ScriptedTransport(response(200))
    guard = make_guard(transport)
    headers = (
        ("Connection", "X-Hop, keep-alive"),
        ("X-Hop", "1"),
        ("Expect", "100-continue"),
        ("X-Kept", "2"),
    )

    await guard.execute(Call(key="k", url=URL, headers=headers))

    sent = dict(transport.requests[0][0].headers)
    assert sent == {"X-Kept": "2"}


async def test_fallback_separated_by_api_key() -> None:
    transport = ScriptedTransport(response(200, b"alice"))
    guard = make_guard(transport, retry={"max_retries": 0})
    await guard.execute(Call(key="k", url=URL, headers=(("X-Api-Key", "alice"),)))
    transport.script(response(503))

    with pytest.raises(UpstreamFailedError):
        await guard.execute(Call(key="k", url=URL, headers=(("X-Api-Key", "bob"),)))
