"""End to end: deadlines against hanging and trickling upstreams, and disconnects."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from retries_support import counter, execute, settings
from server_process import Server
from upstream import ScriptedUpstream, hang, slow_drip

pytestmark = pytest.mark.e2e


def test_call_deadline_against_hang(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(**settings(FAULTGUARD_REQUEST__TIMEOUT="5s"))
    upstream.script("/hang", hang())
    started = time.monotonic()

    response = execute(server, key="k", url=upstream.url_for("/hang"), timeout=1)

    assert time.monotonic() - started < 1.8
    assert response.status_code == 504
    assert upstream.hits["/hang"] == 1


def test_call_deadline_against_trickle(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(**settings(FAULTGUARD_REQUEST__TIMEOUT="5s"))
    upstream.script("/drip", slow_drip(b"x" * 400, interval=0.05))
    started = time.monotonic()

    response = execute(server, key="k", url=upstream.url_for("/drip"), timeout=1)

    assert time.monotonic() - started < 1.8
    assert response.status_code == 504


def test_attempt_timeout_covers_whole_body(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    # Each byte arrives well within any per-read timeout, but the body takes 20 s.
    server = faultguard(
        **settings(
            FAULTGUARD_REQUEST__TIMEOUT="500ms",
            FAULTGUARD_RETRY__MAX_RETRIES="0",
        )
    )
    upstream.script("/drip", slow_drip(b"x" * 400, interval=0.05))
    started = time.monotonic()

    response = execute(server, key="k", url=upstream.url_for("/drip"))

    assert time.monotonic() - started < 1.5
    assert response.status_code == 502
    assert "UpstreamTimeoutError" in response.json()["detail"]


def test_disconnect_stops_further_attempts(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(
        **settings(
            FAULTGUARD_REQUEST__TIMEOUT="1s",
            FAULTGUARD_REQUEST__DEADLINE="30s",
            FAULTGUARD_RETRY__MAX_RETRIES="10",
        )
    )
    origin = f"127.0.0.1:{upstream.port}"
    upstream.script("/hang", hang())

    with pytest.raises(httpx.ReadTimeout):
        execute(server, key="k", url=upstream.url_for("/hang"), client_timeout=0.5)
    # Without cancellation the 1 s attempt would time out and be retried.
    time.sleep(2.5)

    assert upstream.hits["/hang"] == 1
    assert (
        counter(
            server, "circuit_breaker_calls_total", service=origin, outcome="cancelled"
        )
        == 1
    )
    assert counter(server, "circuit_breaker_failures_total", service=origin) == 0


def test_raw_socket_disconnect_stops_attempts(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(
        **settings(
            FAULTGUARD_REQUEST__TIMEOUT="500ms",
            FAULTGUARD_REQUEST__DEADLINE="30s",
            FAULTGUARD_RETRY__MAX_RETRIES="10",
            FAULTGUARD_RETRY__BASE_DELAY="500ms",
            FAULTGUARD_RETRY__MAX_DELAY="500ms",
        )
    )
    upstream.script("/hang", hang())
    body = f'{{"key": "k", "url": "{upstream.url_for("/hang")}"}}'.encode()
    address = urlsplit(server.url)
    head = (
        f"POST /execute HTTP/1.1\r\nHost: {address.netloc}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()

    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(head + body)
        assert upstream.wait_for_hits("/hang", 1, timeout=5)
    hits_at_close = upstream.hits["/hang"]
    time.sleep(2.0)

    assert upstream.hits["/hang"] == hits_at_close
