"""End to end: the retry budget during a burst and the bulkhead under overflow."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from retries_support import counter, execute, settings
from server_process import Server
from upstream import ScriptedUpstream, hang, status

pytestmark = pytest.mark.e2e

BURST_CALLS = 40


def test_retry_budget_bounds_burst(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(
        **settings(
            FAULTGUARD_RETRY__BUDGET_RATIO="0.2",
            FAULTGUARD_RETRY__BUDGET_MIN_PER_SECOND="0",
            FAULTGUARD_RETRY__BUDGET_WINDOW="60s",
        )
    )
    origin = f"127.0.0.1:{upstream.port}"
    upstream.script("/down", status(503))
    url = upstream.url_for("/down")

    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(
                lambda n: execute(server, key=f"k{n}", url=url), range(BURST_CALLS)
            )
        )

    assert all(response.status_code == 502 for response in responses)
    # Without the budget the burst would send 4 attempts per call: 160 hits.
    assert upstream.hits["/down"] <= BURST_CALLS * 1.2
    assert upstream.hits["/down"] >= BURST_CALLS
    refused = counter(server, "circuit_breaker_retries_refused_total", service=origin)
    assert refused >= BURST_CALLS * 0.8
    retries = counter(server, "circuit_breaker_retries_total", service=origin)
    assert retries == upstream.hits["/down"] - BURST_CALLS


def test_bulkhead_rejects_overflow(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(
        **settings(
            FAULTGUARD_REQUEST__MAX_CONCURRENCY="2",
            FAULTGUARD_REQUEST__TIMEOUT="3s",
            FAULTGUARD_RETRY__MAX_RETRIES="0",
        )
    )
    origin = f"127.0.0.1:{upstream.port}"
    upstream.script("/slow", hang())
    url = upstream.url_for("/slow")

    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(execute, server, key=f"k{n}", url=url) for n in range(2)]
        assert upstream.wait_for_hits("/slow", 2, timeout=5)

        rejected = execute(server, key="k9", url=url)

        assert rejected.status_code == 503
        problem = rejected.json()
        assert problem["type"] == "urn:faultguard:problem:concurrency-limit"
        assert problem["title"] == "Concurrency limit reached"
        assert problem["limit"] == 2
        assert rejected.headers["content-type"].startswith("application/problem+json")
        assert upstream.hits["/slow"] == 2
        assert [future.result(timeout=10).status_code for future in held] == [502, 502]

    assert (
        counter(server, "circuit_breaker_bulkhead_rejections_total", service=origin)
        == 1
    )
    # The two held calls timed out upstream; the rejection added no failure.
    assert counter(server, "circuit_breaker_failures_total", service=origin) == 2
