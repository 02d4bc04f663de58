"""A real Prometheus server scrapes faultguard's /metrics."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from server_process import Server, free_port
from upstream import ScriptedUpstream, status

pytestmark = pytest.mark.e2e

PROMETHEUS = shutil.which("prometheus")
SCRAPE_WAIT = 30.0


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start Prometheus scraping a target; yields a function that sets it up."""
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (Debian package 'prometheus')")
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: faultguard\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        log = (tmp_path / "prometheus.log").open("wb")
        processes.append(
            subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def query(prometheus_url: str, promql: str) -> list[dict[str, object]]:
    try:
        response = httpx.get(
            f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=5
        )
    except httpx.TransportError:
        return []
    if response.status_code != 200:
        return []
    result: list[dict[str, object]] = response.json()["data"]["result"]
    return result


def test_prometheus_scrapes_open_breaker(
    upstream: ScriptedUpstream,
    faultguard: Callable[..., Server],
    prometheus: Callable[[str], str],
) -> None:
    server = faultguard(
        FAULTGUARD_BREAKER__MAX_FAILURES="2",
        FAULTGUARD_BREAKER__OPEN_DURATION="5m",
        FAULTGUARD_RETRY__MAX_RETRIES="0",
    )
    upstream.script("/down", status(503))
    for _ in range(2):
        httpx.post(
            f"{server.url}/execute",
            json={"key": "k", "url": upstream.url_for("/down")},
            timeout=10,
        )
    metrics_target = server.metrics_url.removeprefix("http://").removesuffix("/metrics")
    prometheus_url = prometheus(metrics_target)
    origin = f"127.0.0.1:{upstream.port}"

    deadline = time.monotonic() + SCRAPE_WAIT
    state: list[dict[str, object]] = []
    while time.monotonic() < deadline and not state:
        state = query(prometheus_url, f'circuit_breaker_state{{service="{origin}"}}')
        time.sleep(0.5)

    assert state, "Prometheus never scraped circuit_breaker_state"
    assert state[0]["value"][1] == "1"  # type: ignore[index]
    failures = query(
        prometheus_url, f'circuit_breaker_failures_total{{service="{origin}"}}'
    )
    assert failures[0]["value"][1] == "2"  # type: ignore[index]
