"""Guard: retries, deadlines, breaker interplay and fallback, on a fake clock."""

from __future__ import annotations

import random
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
    load_settings,
)
from faultguard_core.backoff.strategies import ExponentialBackoff
from faultguard_core.storage.base import EntryKey
from faultguard_core.storage.memory import MemoryStore
from faultguard_core.testing.transport import HANG, ScriptedTransport, response
from faultguard_core.transport.base import (
    UpstreamConnectError,
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
    transport = ScriptedTransport(response(500))
    guard = make_guard(transport, retry={"max_retries": 2})

    with pytest.raises(UpstreamFailedError) as caught:
        await guard.execute(Call(key="k", url=URL))

    assert caught.value.attempts == 3
    assert caught.value.upstream_status == 500
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
    transport = ScriptedTransport(response(500))
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
