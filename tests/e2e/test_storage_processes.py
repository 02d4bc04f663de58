"""Storage across processes: kill -9 during SQLite writes, replicas sharing Redis.

Every server is a `faultguard serve` subprocess on 127.0.0.1. The Redis
tests use the server on 127.0.0.1:6379 with a key prefix of their own, and
the outage test starts and stops its own `redis-server` on a free port.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from server_process import Server, free_port, start_server
from upstream import ScriptedUpstream, delay, ok, status

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SHARED_REDIS = "redis://127.0.0.1:6379/0"


def execute(server: Server, key: str, url: str, timeout: float = 10) -> httpx.Response:
    return httpx.post(
        f"{server.url}/execute", json={"key": key, "url": url}, timeout=timeout
    )


def other_plugins_blocked() -> str:
    """Block every installed plugin but `redis`, so only this one is tested."""
    names = {
        entry_point.name
        for entry_point in importlib.metadata.entry_points(group="faultguard")
    }
    return ",".join(sorted(names - {"redis"}))


def redis_env(url: str, prefix: str, **extra: str) -> dict[str, str]:
    env = {
        "FAULTGUARD_PLUGINS__AUTOLOAD": "true",
        "FAULTGUARD_PLUGINS__BLOCK": other_plugins_blocked(),
        "FAULTGUARD_STORAGE__REDIS__URL": url,
        "FAULTGUARD_STORAGE__REDIS__KEY_PREFIX": prefix,
        "FAULTGUARD_RETRY__MAX_RETRIES": "0",
    }
    env.update(extra)
    return env


def degradations(server: Server) -> dict[str, float]:
    text = httpx.get(server.metrics_url, timeout=5).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "circuit_breaker_storage_degradations_total":
                found[sample.labels["role"]] = sample.value
    return found


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = "fg-e2e-" + uuid.uuid4().hex
    yield prefix
    client = redis.Redis.from_url(SHARED_REDIS)
    keys = list(client.scan_iter(match="{" + prefix + "}*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_storage_kill_keeps_committed_entries(
    tmp_path: Path, upstream: ScriptedUpstream, servers: list[Server]
) -> None:
    directory = tmp_path / "node"
    directory.mkdir()
    settings = {"FAULTGUARD_STORAGE__DURABILITY": "sync"}
    server = start_server(directory, settings)
    servers.append(server)
    acknowledged: list[str] = []
    stop = threading.Event()

    def write(worker: int) -> None:
        with httpx.Client(timeout=5) as client:
            for index in range(10_000):
                if stop.is_set():
                    return
                key = f"w{worker}-{index}"
                try:
                    response = client.post(
                        f"{server.url}/execute",
                        json={"key": key, "url": f"{upstream.url}/items/{key}"},
                    )
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    acknowledged.append(key)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(10)
    stop.set()
    for thread in threads:
        thread.join(10)

    restarted = start_server(directory, settings)
    servers.append(restarted)
    ready = httpx.get(f"{restarted.url}/ready", timeout=5)
    connection = sqlite3.connect(server.db_path)
    (integrity,) = connection.execute("PRAGMA integrity_check").fetchone()
    stored = {row[0] for row in connection.execute("SELECT key FROM entries")}
    connection.close()

    assert len(acknowledged) >= 300
    assert ready.status_code == 200
    assert integrity == "ok"
    assert set(acknowledged) - stored == set()


def start_shared_breaker_pair(
    tmp_path: Path, servers: list[Server], redis_prefix: str, **settings: str
) -> tuple[Server, Server]:
    """Start two servers that keep breaker state in the shared Redis."""
    env = redis_env(
        SHARED_REDIS,
        redis_prefix,
        FAULTGUARD_STORAGE__BACKEND="memory",
        FAULTGUARD_STORAGE__BREAKER_STATE="redis",
        # Generous, so a loaded test machine does not degrade to local breakers.
        FAULTGUARD_STORAGE__REDIS__TIMEOUT="2s",
        **settings,
    )
    pair = []
    for name in ("a", "b"):
        directory = tmp_path / name
        directory.mkdir()
        server = start_server(directory, env)
        servers.append(server)
        pair.append(server)
    return pair[0], pair[1]


def test_storage_redis_breaker_shared(
    tmp_path: Path,
    upstream: ScriptedUpstream,
    servers: list[Server],
    redis_prefix: str,
) -> None:
    first, second = start_shared_breaker_pair(
        tmp_path,
        servers,
        redis_prefix,
        FAULTGUARD_BREAKER__MAX_FAILURES="3",
        FAULTGUARD_BREAKER__OPEN_DURATION="1s",
        FAULTGUARD_BREAKER__HALF_OPEN_MAX_CALLS="2",
    )
    url = f"{upstream.url}/flaky"
    upstream.script("/flaky", status(500))

    failures = [execute(first, f"k{n}", url).status_code for n in range(3)]
    hits_after_open = upstream.hits.total
    rejected = execute(second, "other", url)
    origin = f"127.0.0.1:{upstream.port}"
    seen_by_second = httpx.get(f"{second.url}/breakers/{origin}", timeout=10)

    time.sleep(1.2)
    upstream.script("/flaky", delay(0.8, ok(body={"ok": True})))
    targets = [first, second] * 8
    with ThreadPoolExecutor(len(targets)) as pool:
        answers = list(
            pool.map(lambda s: execute(s, "probe", url), targets, timeout=30)
        )
    codes = sorted(answer.status_code for answer in answers)
    degraded = [degradations(server) for server in (first, second)]

    assert degraded == [{}, {}]
    assert failures == [502, 502, 502]
    assert rejected.status_code == 503
    assert rejected.json()["state"] == "open"
    assert seen_by_second.json()["state"] == "open"
    assert seen_by_second.json()["open_remaining_seconds"] > 0
    assert upstream.hits.total - hits_after_open == 2
    assert codes == [200, 200] + [503] * 14


def state_gauge(server: Server, origin: str) -> float | None:
    text = httpx.get(server.metrics_url, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "circuit_breaker_state"
                and sample.labels.get("service") == origin
            ):
                return float(sample.value)
    return None


def test_storage_redis_idle_replica_sees_open(
    tmp_path: Path,
    upstream: ScriptedUpstream,
    servers: list[Server],
    redis_prefix: str,
) -> None:
    first, second = start_shared_breaker_pair(
        tmp_path,
        servers,
        redis_prefix,
        FAULTGUARD_BREAKER__MAX_FAILURES="2",
        FAULTGUARD_BREAKER__OPEN_DURATION="60s",
        FAULTGUARD_RETRY__MAX_RETRIES="0",
    )
    origin = f"127.0.0.1:{upstream.port}"
    # The second server knows the breaker, then stays idle while the first
    # server's failures open it.
    assert execute(second, "warm", f"{upstream.url}/ok").status_code == 200
    upstream.script("/down", status(500))
    for n in range(2):
        execute(first, f"k{n}", f"{upstream.url}/down")

    deadline = time.monotonic() + 5
    seen = state_gauge(second, origin)
    while seen != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = state_gauge(second, origin)

    assert state_gauge(first, origin) == 1
    assert seen == 1


def _start_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client.ping()
            client.close()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"redis-server on port {port} did not start")


def _stop_redis(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.mark.skipif(
    shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists(),
    reason="redis-server is not installed",
)
def test_storage_redis_outage_degrades_and_recovers(
    tmp_path: Path, upstream: ScriptedUpstream, servers: list[Server]
) -> None:
    port = free_port()
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    redis_process = _start_redis(port, redis_dir)
    try:
        env = redis_env(
            f"redis://127.0.0.1:{port}/0",
            "outage",
            FAULTGUARD_STORAGE__BACKEND="redis",
            FAULTGUARD_STORAGE__BREAKER_STATE="redis",
            FAULTGUARD_STORAGE__REDIS__TIMEOUT="200ms",
        )
        nodes = []
        for name in ("a", "b"):
            directory = tmp_path / name
            directory.mkdir()
            node = start_server(directory, env)
            servers.append(node)
            nodes.append(node)
        url = f"{upstream.url}/items"
        client = redis.Redis(port=port)

        before = [
            execute(node, f"before-{n}", url).status_code
            for n, node in enumerate(nodes)
        ]
        keys_before = len(list(client.scan_iter(match="{outage}*")))

        _stop_redis(redis_process)
        started = time.monotonic()
        during = [
            execute(node, f"during-{n}-{i}", url).status_code
            for i in range(10)
            for n, node in enumerate(nodes)
        ]
        during_elapsed = time.monotonic() - started
        degraded = [degradations(node) for node in nodes]

        redis_process = _start_redis(port, redis_dir)
        time.sleep(1.5)
        after = [
            execute(node, f"after-{n}-{i}", url).status_code
            for i in range(5)
            for n, node in enumerate(nodes)
        ]
        keys_after = {key.decode() for key in client.scan_iter(match="{outage}:fb:*")}
        client.close()
        logs = [node.log() for node in nodes]
    finally:
        _stop_redis(redis_process)

    assert before == [200, 200]
    assert keys_before >= 2
    assert during == [200] * 20
    assert during_elapsed < 20 * 2.0
    assert all(entry.get("fallback", 0) >= 1 for entry in degraded)
    assert all(entry.get("breaker_state", 0) >= 1 for entry in degraded)
    assert after == [200] * 10
    # The restarted Redis contains the entries written after recovery and the
    # entries each replica kept in memory during the outage (resync).
    assert len(keys_after) >= 30
    assert all("fallback_store_recovered" in log for log in logs)
    assert all("breaker_state_store_recovered" in log for log in logs)


def test_storage_persisted_breaker_survives_restart(
    tmp_path: Path, upstream: ScriptedUpstream, servers: list[Server]
) -> None:
    directory = tmp_path / "node"
    directory.mkdir()
    settings = {
        "FAULTGUARD_BREAKER__PERSIST_STATE": "true",
        "FAULTGUARD_BREAKER__MAX_FAILURES": "2",
        "FAULTGUARD_BREAKER__OPEN_DURATION": "1m",
        "FAULTGUARD_RETRY__MAX_RETRIES": "0",
    }
    server = start_server(directory, settings)
    servers.append(server)
    url = f"{upstream.url}/down"
    upstream.script("/down", status(500))
    failures = [execute(server, f"k{n}", url).status_code for n in range(2)]
    server.stop()

    restarted = start_server(directory, settings)
    servers.append(restarted)
    hits_before = upstream.hits.total
    rejected = execute(restarted, "k9", url)

    assert failures == [502, 502]
    assert rejected.status_code == 503
    assert int(rejected.headers["retry-after"]) > 30
    assert upstream.hits.total == hits_before
