"""SQLite store durability: migrations, batched writes, several processes, restarts."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import anyio
import pytest

from faultguard_core import cli
from faultguard_core.clock import FakeClock
from faultguard_core.errors import StorageError
from faultguard_core.storage.base import (
    BreakerPolicy,
    EntryKey,
    SharedBreakerState,
    SharedOutcome,
    StoredResponse,
)
from faultguard_core.storage.sqlite import SCHEMA_VERSION, SQLiteStore
from faultguard_core.storage.sqlite_state import SQLiteBreakerStateStore

KEY = EntryKey(key="orders", method="GET", url="https://api.example.test/orders")

VERSION_1_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (1);
CREATE TABLE entries (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    method TEXT NOT NULL,
    url TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    fetched_at REAL NOT NULL,
    stored_at REAL NOT NULL
);
"""


def _response(fetched_at: float = 100.0, body: bytes = b"payload") -> StoredResponse:
    return StoredResponse(
        status_code=200,
        headers=(("content-type", "text/plain"),),
        body=body,
        fetched_at=fetched_at,
        stored_at=fetched_at + 1.0,
    )


def _rows(path: Path) -> int:
    connection = sqlite3.connect(path)
    (count,) = connection.execute("SELECT COUNT(*) FROM entries").fetchone()
    connection.close()
    return int(count)


def _write_version_1(path: Path, keys: int) -> None:
    connection = sqlite3.connect(path)
    connection.executescript(VERSION_1_SCHEMA)
    for index in range(keys):
        key = EntryKey(key=f"k{index}", method="GET", url=f"/v1/{index}")
        connection.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.digest,
                key.key,
                key.method,
                key.url,
                200,
                '[["content-type", "text/plain"]]',
                b"payload",
                100.0 + index,
                101.0 + index,
            ),
        )
    connection.commit()
    connection.close()


@pytest.mark.anyio
async def test_sqlite_migrates_version_1_file(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _write_version_1(path, keys=3)
    store = SQLiteStore(path, max_entries=10)

    await store.open()
    migrated = await store.get(EntryKey(key="k1", method="GET", url="/v1/1"))
    await store.put(KEY, _response())
    await store.close()

    connection = sqlite3.connect(path)
    versions = connection.execute("SELECT version FROM schema_version").fetchall()
    (count,) = connection.execute("SELECT entries FROM entry_stats").fetchone()
    (integrity,) = connection.execute("PRAGMA integrity_check").fetchone()
    connection.close()
    assert migrated == StoredResponse(
        status_code=200,
        headers=(("content-type", "text/plain"),),
        body=b"payload",
        fetched_at=101.0,
        stored_at=102.0,
    )
    assert versions == [(SCHEMA_VERSION,)]
    assert count == 4
    assert integrity == "ok"


@pytest.mark.anyio
async def test_sqlite_migration_keeps_lru_order(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _write_version_1(path, keys=3)
    store = SQLiteStore(path, max_entries=3)
    await store.open()

    # Migrated rows are ordered by stored_at, so k0 is evicted first.
    await store.put(KEY, _response(fetched_at=500.0))
    evicted = await store.get(EntryKey(key="k0", method="GET", url="/v1/0"))
    kept = await store.get(EntryKey(key="k2", method="GET", url="/v1/2"))
    await store.close()

    assert evicted is None
    assert kept is not None


@pytest.mark.anyio
async def test_sqlite_batched_put_commits_later(tmp_path: Path) -> None:
    path = tmp_path / "batched.db"
    store = SQLiteStore(path, durability="batched", batch_interval=30.0)
    await store.open()

    written = await store.put(KEY, _response())
    rows_before_flush = _rows(path)
    served_before_flush = await store.get(KEY)
    await store.flush()
    rows_after_flush = _rows(path)
    await store.close()

    assert written is True
    assert rows_before_flush == 0
    assert served_before_flush == _response()
    assert rows_after_flush == 1


@pytest.mark.anyio
async def test_sqlite_batched_close_flushes(tmp_path: Path) -> None:
    path = tmp_path / "batched.db"
    store = SQLiteStore(path, durability="batched", batch_interval=30.0)
    await store.open()
    for index in range(20):
        await store.put(EntryKey(key=f"k{index}", method="GET", url="/"), _response())

    await store.close()

    assert _rows(path) == 20


@pytest.mark.anyio
async def test_sqlite_batched_flusher_commits_on_interval(tmp_path: Path) -> None:
    path = tmp_path / "batched.db"
    store = SQLiteStore(path, durability="batched", batch_interval=0.02)
    await store.open()
    await store.put(KEY, _response())

    rows = 0
    with anyio.fail_after(10):
        # Polls the file from outside, as another process would see it.
        for _ in range(1000):
            rows = _rows(path)
            if rows:
                break
            await anyio.sleep(0.01)
    await store.close()

    assert rows == 1


@pytest.mark.anyio
async def test_sqlite_batched_full_queue_commits(tmp_path: Path) -> None:
    path = tmp_path / "batched.db"
    store = SQLiteStore(
        path, durability="batched", batch_interval=30.0, batch_max_pending=3
    )
    await store.open()
    for index in range(4):
        await store.put(EntryKey(key=f"k{index}", method="GET", url="/"), _response())

    rows = _rows(path)
    await store.close()

    assert rows == 3


@pytest.mark.anyio
async def test_sqlite_batched_delete_drops_queued(tmp_path: Path) -> None:
    path = tmp_path / "batched.db"
    store = SQLiteStore(path, durability="batched", batch_interval=30.0)
    await store.open()
    await store.put(KEY, _response())

    deleted = await store.delete(KEY)
    await store.close()

    assert deleted is True
    assert _rows(path) == 0


def _write_from_process(path: str, worker: int, count: int) -> None:
    async def write() -> None:
        store = SQLiteStore(path, busy_timeout=30.0)
        await store.open()
        for index in range(count):
            shared = _response(fetched_at=float(index * 10 + worker))
            await store.put(KEY, shared)
            own = EntryKey(key=f"w{worker}", method="GET", url=f"/{index}")
            await store.put(own, _response())
        await store.close()

    anyio.run(write)


@pytest.mark.slow
def test_sqlite_processes_write_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    workers, count = 4, 150
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_write_from_process, args=(str(path), worker, count))
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=90)

    connection = sqlite3.connect(path)
    (integrity,) = connection.execute("PRAGMA integrity_check").fetchone()
    (newest,) = connection.execute(
        "SELECT fetched_at FROM entries WHERE id = ?", (KEY.digest,)
    ).fetchone()
    connection.close()
    # Each process exits with 1 on an uncaught StorageError ("database is locked").
    assert [process.exitcode for process in processes] == [0] * workers
    assert integrity == "ok"
    assert _rows(path) == workers * count + 1
    assert newest == float((count - 1) * 10 + workers - 1)


@pytest.mark.anyio
async def test_sqlite_open_breaker_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    clock = FakeClock(wall_start=1_700_000_000.0)
    policy = BreakerPolicy(
        max_failures=1, open_duration=30.0, half_open_max_calls=1, probe_timeout=5.0
    )
    first = SQLiteBreakerStateStore(path, clock=clock)
    await first.open()
    admission = await first.acquire("payments", policy)
    await first.record(
        "payments", policy, admission.generation, False, SharedOutcome.FAILURE
    )
    await first.close()

    clock.advance(10.0)
    second = SQLiteBreakerStateStore(path, clock=clock)
    await second.open()
    rejected = await second.acquire("payments", policy)
    await second.close()

    assert rejected.admitted is False
    assert rejected.state is SharedBreakerState.OPEN
    assert rejected.retry_after == pytest.approx(20.0)


@pytest.mark.anyio
async def test_sqlite_state_store_rejects_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"not sqlite at all\n" * 200)
    store = SQLiteBreakerStateStore(path)

    with pytest.raises(StorageError) as caught:
        await store.open()

    assert str(path) in str(caught.value)
    assert "move it away" in str(caught.value)


def test_sqlite_serve_newer_schema_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "newer.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    connection.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 5,))
    connection.commit()
    connection.close()
    monkeypatch.setenv("FAULTGUARD_PLUGINS__AUTOLOAD", "false")

    status = cli.main(
        ["serve", "--storage-path", str(path), "--port", "0", "--metrics-port", "0"]
    )

    error = capsys.readouterr().err
    assert status == 2
    assert str(path) in error
    assert f"schema version {SCHEMA_VERSION + 5}" in error
    assert "Traceback" not in error


def test_sqlite_serve_missing_directory_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "absent" / "fallback.db"
    monkeypatch.setenv("FAULTGUARD_PLUGINS__AUTOLOAD", "false")

    status = cli.main(
        ["serve", "--storage-path", str(path), "--port", "0", "--metrics-port", "0"]
    )

    error = capsys.readouterr().err
    assert status == 2
    assert str(path) in error
    assert "does not exist" in error
