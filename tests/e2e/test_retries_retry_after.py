"""End to end: Retry-After in both forms, each invalid form, and past the deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from retries_support import execute, settings
from server_process import Server
from upstream import ScriptedUpstream, ok, retry_after

from faultguard_core.retry_after import format_http_date

pytestmark = pytest.mark.e2e

INVALID_VALUES = [
    "-5",
    "1.5",
    "soon",
    "",
    "99999999999999999999",
    "Wed, 32 Oct 2015 07:28:00 GMT",
    "Wed, 21 Oct 9999 07:28:00 GMT",
]


@pytest.fixture
def server(faultguard: Callable[..., Server]) -> Server:
    return faultguard(**settings(FAULTGUARD_REQUEST__DEADLINE="5s"))


def timed_call(server: Server, url: str) -> tuple[float, int, int]:
    started = time.monotonic()
    response = execute(server, key="k", url=url)
    elapsed = time.monotonic() - started
    attempts = response.json().get("attempts", 0)
    return elapsed, response.status_code, attempts


def test_retry_after_delta_seconds(upstream: ScriptedUpstream, server: Server) -> None:
    upstream.script("/busy", retry_after(503, 1), ok())

    elapsed, status_code, attempts = timed_call(server, upstream.url_for("/busy"))

    assert status_code == 200
    assert attempts == 2
    assert elapsed >= 1.0


def test_retry_after_http_date(upstream: ScriptedUpstream, server: Server) -> None:
    upstream.script("/busy", retry_after(429, format_http_date(time.time() + 2)), ok())

    elapsed, status_code, attempts = timed_call(server, upstream.url_for("/busy"))

    assert status_code == 200
    assert attempts == 2
    # The date has whole seconds, so the wait is between 1 and 2 seconds.
    assert elapsed >= 1.0


@pytest.mark.parametrize("value", INVALID_VALUES)
def test_retry_after_invalid_uses_backoff(
    upstream: ScriptedUpstream, server: Server, value: str
) -> None:
    upstream.script("/busy", retry_after(503, value), ok())

    elapsed, status_code, attempts = timed_call(server, upstream.url_for("/busy"))

    assert status_code == 200
    assert attempts == 2
    assert elapsed < 0.9


def test_retry_after_past_deadline_ends_call(
    upstream: ScriptedUpstream, server: Server
) -> None:
    upstream.script("/busy", retry_after(503, 60), ok())
    started = time.monotonic()

    response = execute(server, key="k", url=upstream.url_for("/busy"))

    assert time.monotonic() - started < 0.9
    assert response.status_code == 502
    assert response.headers["retry-after"] == "60"
    assert response.json()["upstream_status"] == 503
    assert upstream.hits["/busy"] == 1
