"""The main job end to end: `faultguard serve` in front of a scripted upstream."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_process import Server
from upstream import ScriptedUpstream, ok, reset, status

pytestmark = pytest.mark.e2e

SETTINGS = {
    "FAULTGUARD_BREAKER__MAX_FAILURES": "3",
    "FAULTGUARD_BREAKER__OPEN_DURATION": "1s",
    "FAULTGUARD_RETRY__MAX_RETRIES": "0",
    "FAULTGUARD_RETRY__BASE_DELAY": "10ms",
    "FAULTGUARD_REQUEST__TIMEOUT": "2s",
}


def execute(server: Server, **body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/execute", json=body, timeout=15)


def metric_samples(server: Server) -> dict[tuple[str, str], float]:
    """Return {(sample name, service label): value} from /metrics."""
    text = httpx.get(server.metrics_url, timeout=5).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            service = sample.labels.get("service", "")
            if set(sample.labels) <= {"service"}:
                samples[(sample.name, service)] = sample.value
    return samples


def stored_keys(server: Server) -> list[tuple[str, str, str, int]]:
    with sqlite3.connect(server.db_path) as connection:
        rows = connection.execute(
            "SELECT key, method, url, status_code FROM entries ORDER BY key"
        ).fetchall()
    return [tuple(row) for row in rows]


def test_main_job_end_to_end(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(**SETTINGS)
    url = upstream.url_for("/users/42")
    origin = f"127.0.0.1:{upstream.port}"

    # A 200 is delivered and stored.
    upstream.script("/users/42", ok(body={"id": 42}))
    first = execute(server, key="user-42", url=url)
    assert first.status_code == 200
    assert first.json()["source"] == "upstream"
    assert first.json()["state"] == "closed"
    assert first.headers["x-faultguard-source"] == "upstream"
    assert '"id"' in first.json()["result"]
    assert stored_keys(server) == [("user-42", "GET", url, 200)]

    # The upstream failing now gives the stored response.
    upstream.script("/users/42", status(500))
    fallback = execute(server, key="user-42", url=url)
    assert fallback.status_code == 200
    assert fallback.json()["source"] == "fallback"
    assert fallback.json()["age_seconds"] >= 0
    assert "stored_at" in fallback.json()
    assert fallback.headers["x-faultguard-source"] == "fallback"

    # Two more failures make three in a row: the breaker opens.
    upstream.script("/users/42", reset())
    execute(server, key="user-42", url=url)
    execute(server, key="user-42", url=url)
    breaker = httpx.get(f"{server.url}/breakers/{origin}", timeout=5).json()
    assert breaker["state"] == "open"

    # A key with nothing stored gets 503 with Retry-After, and no upstream hit.
    hits_before = upstream.hits.total
    rejected = execute(server, key="never-stored", url=url)
    assert rejected.status_code == 503
    assert rejected.headers["content-type"].startswith("application/problem+json")
    assert int(rejected.headers["retry-after"]) >= 1
    assert rejected.json()["state"] == "open"
    assert upstream.hits.total == hits_before

    # The stored key is still served while open, also with no upstream hit.
    while_open = execute(server, key="user-42", url=url)
    assert while_open.json()["source"] == "fallback"
    assert while_open.json()["state"] == "open"
    assert upstream.hits.total == hits_before

    # After open_duration one probe goes through; the recovered upstream closes it.
    time.sleep(1.1)
    half_open = httpx.get(f"{server.url}/breakers/{origin}", timeout=5).json()
    assert half_open["state"] == "half_open"
    upstream.script("/users/42", ok(body={"id": 42, "fresh": True}))
    probe = execute(server, key="user-42", url=url)
    assert probe.json()["source"] == "upstream"
    assert probe.json()["state"] == "closed"
    assert upstream.hits.total == hits_before + 1

    # The metrics tell the same story.
    samples = metric_samples(server)
    assert samples[("circuit_breaker_state", origin)] == 0
    assert samples[("circuit_breaker_failures_total", origin)] == 3
    assert samples[("circuit_breaker_retries_total", origin)] == 0
    # Fallbacks: after the 500, after each reset, and once while open.
    assert samples[("circuit_breaker_fallback_success_total", origin)] == 4
    assert samples[("circuit_breaker_latency_seconds_count", origin)] == 7


def test_state_gauge_shows_open(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(**{**SETTINGS, "FAULTGUARD_BREAKER__OPEN_DURATION": "60s"})
    upstream.script("/down", status(503))
    origin = f"127.0.0.1:{upstream.port}"
    for _ in range(3):
        execute(server, key="k", url=upstream.url_for("/down"))

    samples = metric_samples(server)

    assert samples[("circuit_breaker_state", origin)] == 1


def test_retries_counted_in_metrics(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(
        **{
            **SETTINGS,
            "FAULTGUARD_RETRY__MAX_RETRIES": "2",
            "FAULTGUARD_BREAKER__MAX_FAILURES": "10",
        }
    )
    upstream.script("/flaky", status(503), status(502), ok())
    origin = f"127.0.0.1:{upstream.port}"

    response = execute(server, key="k", url=upstream.url_for("/flaky"))

    assert response.status_code == 200
    assert response.json()["attempts"] == 3
    assert response.headers["x-faultguard-attempts"] == "3"
    samples = metric_samples(server)
    assert samples[("circuit_breaker_retries_total", origin)] == 2
    assert samples[("circuit_breaker_failures_total", origin)] == 2


def test_failed_upstream_without_fallback_gets_502(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(**SETTINGS)
    upstream.script("/broken", status(500))

    response = execute(server, key="k", url=upstream.url_for("/broken"))

    assert response.status_code == 502
    assert response.json()["upstream_status"] == 500
    assert response.headers["content-type"].startswith("application/problem+json")


INVALID_BODIES = [
    (b'{"url": "UPSTREAM/"}', "missing key"),
    (b'{"key": "k", "url": "ftp://127.0.0.1/file"}', "ftp url"),
    (b'{"key": "k", "url": ', "bad json"),
    (b'{"key": "", "url": "UPSTREAM/"}', "empty key"),
    (b'{"key": "k", "url": "UPSTREAM/", "extra": 1}', "unknown field"),
    (b'{"key": "k", "url": "UPSTREAM/", "timeout": -1}', "negative timeout"),
    (b'{"key": "k", "url": "UPSTREAM/", "service": "nope"}', "unknown service"),
]


def test_invalid_input_gets_400_without_upstream_hit(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(**SETTINGS)

    for content, reason in INVALID_BODIES:
        response = httpx.post(
            f"{server.url}/execute",
            content=content.replace(b"UPSTREAM", upstream.url.encode()),
            headers={"content-type": "application/json"},
            timeout=10,
        )

        assert response.status_code == 400, reason
        problem_type = response.headers["content-type"]
        assert problem_type.startswith("application/problem+json"), reason
        assert response.json()["status"] == 400, reason

    assert upstream.hits.total == 0
    assert stored_keys(server) == []
