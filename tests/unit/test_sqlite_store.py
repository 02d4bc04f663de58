"""SQLiteStore behaviour beyond the store contract: file handling and threading."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from faultguard_core.errors import StorageError
from faultguard_core.hookspecs import StorageFactory
from faultguard_core.settings import Settings
from faultguard_core.storage import sqlite as sqlite_module
from faultguard_core.storage.base import EntryKey, StoredResponse
from faultguard_core.storage.sqlite import SCHEMA_VERSION, SQLiteStore

KEY = EntryKey(key="orders", method="GET", url="https://api.example.test/orders")


def _response(fetched_at: float = 100.0, body: bytes = b"payload") -> StoredResponse:
    return StoredResponse(
        status_code=200,
        headers=(("content-type", "text/plain"),),
        body=body,
        fetched_at=fetched_at,
        stored_at=fetched_at + 1.0,
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "fallback.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(db_path)
    await store.open()
    yield store
    await store.close()


@pytest.mark.anyio
async def test_sqlite_uses_wal_mode(store: SQLiteStore, db_path: Path) -> None:
    await store.put(KEY, _response())

    with sqlite3.connect(db_path) as other:
        (journal_mode,) = other.execute("PRAGMA journal_mode").fetchone()
    other.close()

    assert journal_mode == "wal"


@pytest.mark.anyio
async def test_sqlite_keeps_operator_columns(store: SQLiteStore, db_path: Path) -> None:
    await store.put(KEY, _response())

    other = sqlite3.connect(db_path)
    row = other.execute("SELECT id, key, method, url FROM entries").fetchone()
    other.close()

    assert row == (KEY.digest, KEY.key, KEY.method, KEY.url)


@pytest.mark.anyio
async def test_sqlite_persists_across_reopen(db_path: Path) -> None:
    first = SQLiteStore(db_path)
    await first.open()
    await first.put(KEY, _response())
    await first.close()

    second = SQLiteStore(db_path)
    await second.open()
    stored = await second.get(KEY)
    await second.close()

    assert stored == _response()


@pytest.mark.anyio
async def test_sqlite_same_object_reopens(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    await store.put(KEY, _response())
    await store.close()

    await store.open()
    stored = await store.get(KEY)
    await store.close()

    assert stored == _response()


@pytest.mark.anyio
async def test_sqlite_missing_directory_raises(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "fallback.db"
    store = SQLiteStore(path)

    with pytest.raises(StorageError) as caught:
        await store.open()

    assert str(path) in str(caught.value)
    assert "does not exist" in str(caught.value)


@pytest.mark.anyio
@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root may write to read-only directories",
)
async def test_sqlite_readonly_directory_raises(tmp_path: Path) -> None:
    directory = tmp_path / "readonly"
    directory.mkdir()
    directory.chmod(0o555)
    path = directory / "fallback.db"
    store = SQLiteStore(path)

    try:
        with pytest.raises(StorageError) as caught:
            await store.open()
    finally:
        directory.chmod(0o755)

    assert str(path) in str(caught.value)
    assert "writable" in str(caught.value)


@pytest.mark.anyio
async def test_sqlite_non_database_raises(db_path: Path) -> None:
    await anyio.Path(db_path).write_bytes(
        b"this is a text file, not a SQLite database\n" * 100
    )
    store = SQLiteStore(db_path)

    with pytest.raises(StorageError) as caught:
        await store.open()

    assert str(db_path) in str(caught.value)
    assert "not a SQLite database" in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


@pytest.mark.anyio
async def test_sqlite_newer_schema_raises(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    await store.close()
    with sqlite3.connect(db_path) as other:
        other.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    other.close()

    with pytest.raises(StorageError) as caught:
        await store.open()

    assert str(db_path) in str(caught.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(caught.value)


@pytest.mark.anyio
async def test_sqlite_writes_schema_version(store: SQLiteStore, db_path: Path) -> None:
    other = sqlite3.connect(db_path)
    rows = other.execute("SELECT version FROM schema_version").fetchall()
    other.close()

    assert rows == [(SCHEMA_VERSION,)]


@pytest.mark.anyio
async def test_sqlite_unopened_store_raises(db_path: Path) -> None:
    store = SQLiteStore(db_path)

    with pytest.raises(StorageError) as caught:
        await store.get(KEY)

    assert "not open" in str(caught.value)


@pytest.mark.anyio
async def test_sqlite_closed_store_check_raises(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    await store.close()

    with pytest.raises(StorageError):
        await store.check()


@pytest.mark.anyio
async def test_sqlite_error_translated_with_cause(
    store: SQLiteStore, db_path: Path
) -> None:
    other = sqlite3.connect(db_path)
    other.execute("DROP TABLE entries")
    other.close()

    with pytest.raises(StorageError) as caught:
        await store.get(KEY)

    assert str(db_path) in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)


@pytest.mark.anyio
async def test_sqlite_locked_write_frees_loop(db_path: Path) -> None:
    # Another connection holds the write lock, so the store's put can finish
    # only after this task commits. The ticks below can run only while the put
    # waits in a worker thread; a put on the event loop thread would block the
    # loop until the busy timeout and fail with "database is locked".
    store = SQLiteStore(db_path, busy_timeout=10.0)
    await store.open()
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    results: list[bool] = []
    ticks = 0

    async def write() -> None:
        results.append(await store.put(KEY, _response()))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(write)
            while ticks < 200:
                await anyio.lowlevel.checkpoint()
                ticks += 1
            pending_while_locked = results == []
            blocker.execute("COMMIT")
    blocker.close()
    stored = await store.get(KEY)
    await store.close()

    assert pending_while_locked
    assert results == [True]
    assert stored == _response()


@pytest.mark.anyio
async def test_sqlite_ticker_runs_during_puts(store: SQLiteStore) -> None:
    ticks = 0
    ticks_at_end = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(ticker)
            for index in range(500):
                await store.put(KEY, _response(fetched_at=float(index)))
            ticks_at_end = ticks
            group.cancel_scope.cancel()
    stored = await store.get(KEY)

    # The ticker runs at least once during each await of a put, so this fails
    # for a put that never yields. test_sqlite_locked_write_frees_loop fails
    # for a put that yields but then blocks the loop.
    assert ticks_at_end >= 500
    assert stored == _response(fetched_at=499.0)


@pytest.mark.anyio
async def test_sqlite_two_stores_write_concurrently(db_path: Path) -> None:
    first = SQLiteStore(db_path)
    second = SQLiteStore(db_path)
    await first.open()
    await second.open()
    errors: list[BaseException] = []

    async def write_many(store: SQLiteStore, offset: int) -> None:
        for index in range(200):
            shared = _response(fetched_at=float(index * 2 + offset))
            own = EntryKey(key=f"writer-{offset}", method="GET", url=f"/{index}")
            try:
                await store.put(KEY, shared)
                await store.put(own, _response())
            except StorageError as exc:
                errors.append(exc)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(write_many, first, 0)
            group.start_soon(write_many, second, 1)
    shared_stored = await first.get(KEY)
    other = sqlite3.connect(db_path)
    (row_count,) = other.execute("SELECT COUNT(*) FROM entries").fetchone()
    other.close()
    await first.close()
    await second.close()

    assert errors == []
    assert shared_stored == _response(fetched_at=399.0)
    assert row_count == 401


def test_sqlite_hook_registers_factory(tmp_path: Path) -> None:
    registered: dict[str, StorageFactory] = {}
    settings = Settings(
        storage={
            "path": tmp_path / "from-settings.db",
            "busy_timeout": 2.5,
            "max_entry_bytes": 4096,
        }
    )

    sqlite_module.faultguard_register_storage_backends(registered.__setitem__)
    store = registered["sqlite"](settings)

    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "from-settings.db"
    assert store.busy_timeout == 2.5
    assert store.max_entry_bytes == 4096
    assert store.synchronous == "normal"


@pytest.mark.parametrize("mode", ["normal", "full"])
def test_sqlite_synchronous_from_settings(tmp_path: Path, mode: str) -> None:
    registered: dict[str, StorageFactory] = {}
    settings = Settings(storage={"path": tmp_path / "s.db", "synchronous": mode})

    sqlite_module.faultguard_register_storage_backends(registered.__setitem__)
    store = registered["sqlite"](settings)

    assert isinstance(store, SQLiteStore)
    assert store.synchronous == mode


def test_sqlite_invalid_synchronous_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous must be normal or full"):
        SQLiteStore(tmp_path / "s.db", synchronous="off")
