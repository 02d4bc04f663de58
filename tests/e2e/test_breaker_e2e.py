"""Breaker rules end to end: `faultguard serve` in front of a scripted upstream."""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_process import Server
from upstream import ScriptedUpstream, delay, ok, status

pytestmark = pytest.mark.e2e

TOKEN = "e2e-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

SERVICES = {
    "FAULTGUARD_RETRY__MAX_RETRIES": "0",
    "FAULTGUARD_REQUEST__TIMEOUT": "2s",
    # Opens when half of the last 4 calls failed.
    "FAULTGUARD_SERVICES__RATE__BREAKER__TRIP_POLICIES": "failure_rate",
    "FAULTGUARD_SERVICES__RATE__BREAKER__WINDOW_SIZE": "4",
    "FAULTGUARD_SERVICES__RATE__BREAKER__MIN_CALLS": "4",
    "FAULTGUARD_SERVICES__RATE__BREAKER__FAILURE_RATE_THRESHOLD": "0.5",
    # Opens when both of the last 2 calls took over 200 ms.
    "FAULTGUARD_SERVICES__SLOW__BREAKER__TRIP_POLICIES": "slow_call_rate",
    "FAULTGUARD_SERVICES__SLOW__BREAKER__SLOW_CALL_DURATION": "200ms",
    "FAULTGUARD_SERVICES__SLOW__BREAKER__MIN_CALLS": "2",
    "FAULTGUARD_SERVICES__SLOW__BREAKER__WINDOW_SIZE": "2",
    # Open periods of 300 ms, 600 ms, then 1 s (the cap).
    "FAULTGUARD_SERVICES__GROW__BREAKER__MAX_FAILURES": "1",
    "FAULTGUARD_SERVICES__GROW__BREAKER__OPEN_DURATION": "300ms",
    "FAULTGUARD_SERVICES__GROW__BREAKER__OPEN_DURATION_MULTIPLIER": "2",
    "FAULTGUARD_SERVICES__GROW__BREAKER__MAX_OPEN_DURATION": "1s",
}


_keys = itertools.count()


def execute(server: Server, url: str, **body: object) -> httpx.Response:
    """Call /execute with a fresh key, so no stored fallback replaces the upstream."""
    payload = {"key": f"key-{next(_keys)}", "url": url, **body}
    return httpx.post(f"{server.url}/execute", json=payload, timeout=15)


def breaker(server: Server, name: str) -> dict[str, object]:
    answer = httpx.get(f"{server.url}/breakers/{name}", timeout=5)
    assert answer.status_code == 200, answer.text
    view: dict[str, object] = answer.json()
    return view


def wait_until_half_open(server: Server, name: str, limit: float = 3.0) -> float:
    """Poll until the breaker is half-open; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if breaker(server, name)["state"] == "half_open":
            return time.monotonic() - started
        time.sleep(0.02)
    pytest.fail(f"breaker {name} did not turn half-open within {limit}s")


def gauge(server: Server, service: str) -> float:
    text = httpx.get(server.metrics_url, timeout=5).text
    for family in text_string_to_metric_families(text):
        if family.name == "circuit_breaker_state":
            for sample in family.samples:
                if sample.labels.get("service") == service:
                    return sample.value
    pytest.fail(f"no circuit_breaker_state sample for {service}")


def test_breaker_rules_end_to_end(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(**SERVICES)

    # Trip by failure rate: 2 of 4 calls failed, none of them in a row of 3.
    upstream.script("/rate", ok(), status(500), ok(), status(500), ok())
    rate_url = upstream.url_for("/rate")
    statuses = [execute(server, rate_url, service="rate").status_code for _ in range(4)]
    assert statuses == [200, 502, 200, 502]
    assert breaker(server, "rate")["state"] == "open"
    rejected = execute(server, rate_url, service="rate")
    assert rejected.status_code == 503
    assert upstream.hits["/rate"] == 4

    # Slow calls: two successful responses over 200 ms open the breaker.
    upstream.script("/slow", delay(0.3))
    slow_url = upstream.url_for("/slow")
    for _ in range(2):
        assert execute(server, slow_url, service="slow").status_code == 200
    slow = breaker(server, "slow")
    assert slow["state"] == "open"
    assert execute(server, slow_url, service="slow").status_code == 503
    assert upstream.hits["/slow"] == 2

    # Growing open periods: every failed probe doubles the period, up to 1 s.
    upstream.script("/grow", status(500))
    grow_url = upstream.url_for("/grow")
    periods = []
    for _ in range(3):
        execute(server, grow_url, service="grow")
        view = breaker(server, "grow")
        assert view["state"] == "open"
        periods.append(view["open_remaining_seconds"])
        wait_until_half_open(server, "grow")
    assert breaker(server, "grow")["trips"] == 3
    # Each period is read a little after it started, so only its upper bound
    # is exact. The lower bounds show that it grew past the previous one.
    assert 0.0 < periods[0] <= 0.3
    assert 0.3 < periods[1] <= 0.6
    assert 0.6 < periods[2] <= 1.0

    # A successful probe closes it, and the next trip starts at 300 ms again.
    upstream.script("/grow", ok(), status(500))
    assert execute(server, grow_url, service="grow").status_code == 200
    assert breaker(server, "grow")["state"] == "closed"
    execute(server, grow_url, service="grow")
    reopened = breaker(server, "grow")
    assert reopened["trips"] == 1
    assert 0.0 < reopened["open_remaining_seconds"] <= 0.3


CONFIG = """
[security]
admin_token = "{token}"

[retry]
max_retries = 0

[breaker]
max_failures = {max_failures}
open_duration = "30s"
"""


def test_manual_control_and_reload(
    tmp_path: Path, upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    config = tmp_path / "faultguard.toml"
    config.write_text(CONFIG.format(token=TOKEN, max_failures=5))
    server = faultguard(FAULTGUARD_CONFIG=str(config))
    url = upstream.url_for("/data")
    origin = f"127.0.0.1:{upstream.port}"
    upstream.script("/data", status(500))

    # Admin endpoints need the token.
    denied = httpx.post(f"{server.url}/breakers/{origin}/open", timeout=5)
    assert denied.status_code == 401
    assert denied.headers["content-type"].startswith("application/problem+json")

    # Forced open before the first call: rejected without an upstream hit.
    opened = httpx.post(f"{server.url}/breakers/{origin}/open", headers=AUTH, timeout=5)
    assert opened.json()["state"] == "forced_open"
    rejected = execute(server, url)
    assert rejected.status_code == 503
    assert rejected.json()["state"] == "forced_open"
    assert "retry-after" not in rejected.headers
    assert upstream.hits.total == 0
    assert gauge(server, origin) == 3

    # Forced closed admits and counts every failure without opening.
    httpx.post(f"{server.url}/breakers/{origin}/close", headers=AUTH, timeout=5)
    for _ in range(6):
        assert execute(server, url).status_code == 502
    assert breaker(server, origin)["state"] == "forced_closed"
    assert breaker(server, origin)["consecutive_failures"] == 6
    assert gauge(server, origin) == 4

    # Disabled counts nothing.
    httpx.post(f"{server.url}/breakers/{origin}/disable", headers=AUTH, timeout=5)
    execute(server, url)
    assert breaker(server, origin)["consecutive_failures"] == 0
    assert gauge(server, origin) == 5

    # SIGHUP reloads the file: max_failures drops to 2, the manual state stays.
    config.write_text(CONFIG.format(token=TOKEN, max_failures=2))
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "config_reloaded" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "config_reloaded" in server.log()
    assert breaker(server, origin)["state"] == "disabled"

    # After a reset the new threshold applies: two failures open it.
    reset = httpx.post(f"{server.url}/breakers/{origin}/reset", headers=AUTH, timeout=5)
    assert reset.json()["state"] == "closed"
    execute(server, url)
    execute(server, url)
    assert breaker(server, origin)["state"] == "open"

    # An invalid file is rejected with the reason, and the old settings stay.
    config.write_text(CONFIG.format(token=TOKEN, max_failures=0))
    invalid = httpx.post(f"{server.url}/admin/reload", headers=AUTH, timeout=5)
    assert invalid.status_code == 422
    assert "max_failures" in invalid.json()["detail"]
    httpx.post(f"{server.url}/breakers/{origin}/reset", headers=AUTH, timeout=5)
    execute(server, url)
    execute(server, url)
    assert breaker(server, origin)["state"] == "open"

    # POST /admin/reload applies a valid file, keeping the breaker open.
    config.write_text(CONFIG.format(token=TOKEN, max_failures=4))
    reloaded = httpx.post(f"{server.url}/admin/reload", headers=AUTH, timeout=5)
    assert reloaded.status_code == 200
    assert reloaded.json()["changed"] == ["breaker"]
    assert breaker(server, origin)["state"] == "open"
    assert server.process.poll() is None
