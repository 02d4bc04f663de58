"""Helpers shared by the end-to-end retry tests."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from server_process import Server

BASE_SETTINGS = {
    "FAULTGUARD_BREAKER__MAX_FAILURES": "1000",
    "FAULTGUARD_RETRY__MAX_RETRIES": "3",
    "FAULTGUARD_RETRY__BASE_DELAY": "10ms",
    "FAULTGUARD_RETRY__MAX_DELAY": "50ms",
    "FAULTGUARD_RETRY__JITTER": "none",
    "FAULTGUARD_REQUEST__TIMEOUT": "2s",
    "FAULTGUARD_STORAGE__BACKEND": "memory",
}


def execute(
    server: Server, client_timeout: float = 15, **body: object
) -> httpx.Response:
    """POST `body` to /execute; `client_timeout` limits the HTTP client itself."""
    return httpx.post(f"{server.url}/execute", json=body, timeout=client_timeout)


def counter(server: Server, name: str, **labels: str) -> float:
    """Return the value of one sample of /metrics, 0.0 when it is absent."""
    text = httpx.get(server.metrics_url, timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(
                sample.labels.get(key) == value for key, value in labels.items()
            ):
                return sample.value
    return 0.0


def settings(**overrides: str) -> dict[str, str]:
    """Return `BASE_SETTINGS` with `overrides` applied."""
    return {**BASE_SETTINGS, **overrides}
