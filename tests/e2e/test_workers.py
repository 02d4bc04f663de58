"""`faultguard serve` with two workers: one port, one SQLite file, one metrics page.

Every server is a `faultguard serve` subprocess on 127.0.0.1 whose two
uvicorn workers accept connections from the same listening socket.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_process import Server
from upstream import ScriptedUpstream, status

pytestmark = [pytest.mark.e2e]

WORKERS = {"FAULTGUARD_SERVER__WORKERS": "2", "FAULTGUARD_RETRY__MAX_RETRIES": "0"}


def execute(server: Server, key: str, url: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/execute", json={"key": key, "url": url}, timeout=10
    )


def sample_value(server: Server, name: str, service: str) -> float | None:
    """Return the value of sample `name` for `service` on the metrics page."""
    text = httpx.get(server.metrics_url, timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("service") == service:
                return sample.value
    return None


def worker_pids(server: Server) -> list[int]:
    """Return the PIDs of the uvicorn workers that the server process spawned.

    The multiprocessing resource tracker is a child too, so only children
    started through `spawn_main` count.
    """
    children: list[int] = []
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        children.extend(int(pid) for pid in (task / "children").read_text().split())
    workers = []
    for pid in children:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in command:
            workers.append(pid)
    return workers


def test_workers_share_store_and_metrics(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(**WORKERS)
    url = f"{upstream.url}/items"
    keys = [f"key-{n}" for n in range(60)]

    with ThreadPoolExecutor(60) as pool:
        codes = list(pool.map(lambda key: execute(server, key, url).status_code, keys))
    service = f"127.0.0.1:{upstream.port}"
    calls = sample_value(server, "circuit_breaker_latency_seconds_count", service)
    connection = sqlite3.connect(server.db_path)
    stored = {row[0] for row in connection.execute("SELECT key FROM entries")}
    connection.close()

    assert codes == [200] * 60
    assert stored == set(keys)
    assert "database is locked" not in server.log()
    assert calls == 60


def test_workers_run_two_processes(faultguard: Callable[..., Server]) -> None:
    server = faultguard(**WORKERS)

    pids = worker_pids(server)

    assert len(pids) == 2


def test_workers_share_sqlite_breaker(
    upstream: ScriptedUpstream, faultguard: Callable[..., Server]
) -> None:
    server = faultguard(
        **WORKERS,
        FAULTGUARD_STORAGE__BREAKER_STATE="sqlite",
        FAULTGUARD_BREAKER__MAX_FAILURES="3",
        FAULTGUARD_BREAKER__OPEN_DURATION="1m",
    )
    url = f"{upstream.url}/down"
    upstream.script("/down", status(500))
    service = f"127.0.0.1:{upstream.port}"

    failures = [execute(server, f"fail-{n}", url).status_code for n in range(3)]
    hits_after_open = upstream.hits.total
    rejected = [execute(server, f"late-{n}", url).status_code for n in range(10)]
    deadline = time.monotonic() + 3
    state = sample_value(server, "circuit_breaker_state", service)
    while state != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
        state = sample_value(server, "circuit_breaker_state", service)

    assert failures == [502] * 3
    assert rejected == [503] * 10
    assert upstream.hits.total == hits_after_open
    assert state == 1
