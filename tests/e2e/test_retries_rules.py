"""End to end: which failed attempts are retried, and with which headers."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from retries_support import BASE_SETTINGS, counter, execute
from server_process import Server, free_port
from upstream import ScriptedUpstream, close_before_response, ok, status

pytestmark = pytest.mark.e2e


def test_post_not_retried_after_503(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(**BASE_SETTINGS)
    upstream.script("/pay", status(503), ok())

    response = execute(server, key="k", url=upstream.url_for("/pay"), method="POST")

    assert response.status_code == 502
    assert response.json()["attempts"] == 1
    assert upstream.hits["/pay"] == 1


def test_post_retried_on_connection_refused(
    faultguard: Callable[..., Server],
) -> None:
    # Nothing listens on the port for the first attempt; the upstream starts
    # during the backoff delay and answers the retry.
    port = free_port()
    server = faultguard(
        **{
            **BASE_SETTINGS,
            "FAULTGUARD_RETRY__BACKOFF": "constant",
            "FAULTGUARD_RETRY__BASE_DELAY": "1s",
            "FAULTGUARD_RETRY__MAX_DELAY": "1s",
        }
    )
    url = f"http://127.0.0.1:{port}/pay"

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(execute, server, key="k", url=url, method="POST")
        time.sleep(0.4)
        with ScriptedUpstream(port=port) as upstream:
            upstream.script("/pay", ok(body="paid"))
            response = pending.result(timeout=15)
            hits = upstream.hits["/pay"]

    assert response.status_code == 200
    assert response.json()["attempts"] == 2
    assert response.json()["result"] == "paid"
    assert hits == 1


def test_idempotency_key_on_every_attempt(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(**BASE_SETTINGS)
    upstream.script("/pay", status(503), status(502), ok())

    response = execute(
        server,
        key="k",
        url=upstream.url_for("/pay"),
        method="POST",
        headers={"Idempotency-Key": "order-7"},
        body='{"amount": 5}',
    )

    assert response.status_code == 200
    assert response.json()["attempts"] == 3
    sent = upstream.requests_for("/pay")
    assert [request.headers.get("idempotency-key") for request in sent] == [
        "order-7"
    ] * 3
    assert [request.body for request in sent] == [b'{"amount": 5}'] * 3


def test_stale_keepalive_replayed_invisibly(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(**BASE_SETTINGS)
    origin = f"127.0.0.1:{upstream.port}"
    upstream.script("/s", ok(), close_before_response(), ok(body="fresh"))
    assert execute(server, key="k", url=upstream.url_for("/s")).status_code == 200

    response = execute(server, key="k", url=upstream.url_for("/s"))

    assert response.status_code == 200
    assert response.json()["result"] == "fresh"
    assert response.json()["attempts"] == 1
    assert upstream.hits["/s"] == 3
    assert counter(server, "circuit_breaker_retries_total", service=origin) == 0
    assert counter(server, "circuit_breaker_failures_total", service=origin) == 0
