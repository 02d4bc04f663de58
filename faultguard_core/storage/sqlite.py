"""The `sqlite` backend: fallback entries and breaker state in one SQLite file.

The file is in WAL journal mode. Every statement runs off the event loop, in
a worker thread (`anyio.to_thread.run_sync` with a `CapacityLimiter(1)`) or
in the store's flusher thread, and one `threading.Lock` serialises the use
of the connection. Several processes may share the file. Every
read-then-write runs in `BEGIN IMMEDIATE`, which takes the write lock before
reading, so two writers never deadlock on a lock upgrade. SQLite's busy
timeout (`storage.busy_timeout`) makes writers wait for each other instead
of failing with "database is locked".

Durability (`storage.durability`):

- `sync`: `put` returns after its transaction committed, so a stored entry
  survives a crash of the process. With `synchronous = "full"` each commit
  is also synced to disk and survives a crash of the machine; with the
  default `"normal"` the last commits before a power loss can be lost, but
  the file is never corrupted (SQLite's guarantee for WAL mode).
- `batched`: `put` queues the entry and returns. A flusher thread commits
  the queue in one transaction every `batch_interval` seconds (group
  commit). A crash loses at most the entries queued
  in the last `batch_interval` seconds plus the time of one commit, and
  never more than `batch_max_pending` entries: a `put` that finds the queue
  full commits it before it returns. `close` commits the queue.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import anyio
import anyio.to_thread

from faultguard_core._markers import hookimpl
from faultguard_core.clock import Clock, SystemClock
from faultguard_core.errors import StorageError
from faultguard_core.storage._sqlite_schema import (
    SCHEMA_VERSION,
    connect,
    run_in_transaction,
)
from faultguard_core.storage.base import EntryKey, FallbackStore, StoredResponse

if TYPE_CHECKING:
    from faultguard_core.hookspecs import BreakerStateStoreFactory, StorageFactory
    from faultguard_core.settings import Settings
    from faultguard_core.storage.sqlite_state import SQLiteBreakerStateStore

__all__ = ["SCHEMA_VERSION", "Durability", "SQLiteStore"]

logger = logging.getLogger("faultguard")

T = TypeVar("T")

Durability = Literal["sync", "batched"]

DEFAULT_BUSY_TIMEOUT = 5.0
DEFAULT_MAX_ENTRY_BYTES = 1_048_576
DEFAULT_BATCH_INTERVAL = 0.05
DEFAULT_BATCH_MAX_PENDING = 10_000

PURGE_INTERVAL = 60.0
"""Seconds between two purges of entries past `max_age` during writes."""

_UPSERT = """
INSERT INTO entries (
    id, key, method, url, status_code, headers, body, fetched_at, stored_at,
    last_used, size
)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET
    status_code = excluded.status_code,
    headers = excluded.headers,
    body = excluded.body,
    fetched_at = excluded.fetched_at,
    stored_at = excluded.stored_at,
    last_used = excluded.last_used,
    size = excluded.size
"""

_SELECT = """
SELECT status_code, headers, body, fetched_at, stored_at FROM entries WHERE id = ?
"""

_EVICT = """
DELETE FROM entries WHERE id IN (
    SELECT id FROM entries ORDER BY last_used ASC LIMIT ?
)
"""

# A queued put: the key, the response and its LRU use stamp.
_Pending = tuple[EntryKey, StoredResponse, float]


class SQLiteStore(FallbackStore):
    """A fallback store in the SQLite file at `path`.

    Rows are keyed by `EntryKey.digest`. The `key`, `method` and `url` columns
    are kept for operators who inspect the file, and the credentials hash is
    only part of the digest. `busy_timeout` is in seconds.

    Limits: a body longer than `max_entry_bytes` is not stored; with
    `max_entries`, a write that adds a row beyond it evicts the least
    recently used rows of the file (a `get` hit and a `put` count as a use);
    with `max_age` (seconds), `get` returns no entry whose `stored_at` is
    more than `max_age` before the wall time of `clock`, and writes purge
    such rows at most every `PURGE_INTERVAL` seconds. A `get` hit updates
    `last_used` with the next write, so a crash may lose that recency.

    Every `sqlite3` error is raised as `StorageError` naming the path.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
        max_entries: int | None = None,
        max_age: float | None = None,
        durability: Durability = "sync",
        synchronous: str = "normal",
        batch_interval: float = DEFAULT_BATCH_INTERVAL,
        batch_max_pending: int = DEFAULT_BATCH_MAX_PENDING,
        clock: Clock | None = None,
    ) -> None:
        if busy_timeout < 0:
            raise ValueError(f"busy_timeout must be >= 0 seconds, got {busy_timeout}")
        if max_entry_bytes < 1:
            raise ValueError(
                f"max_entry_bytes must be at least 1, got {max_entry_bytes}"
            )
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if max_age is not None and max_age <= 0:
            raise ValueError(f"max_age must be above 0 seconds or None, got {max_age}")
        if durability not in ("sync", "batched"):
            raise ValueError(f"durability must be sync or batched, got {durability!r}")
        if batch_interval <= 0:
            raise ValueError(f"batch_interval must be above 0, got {batch_interval}")
        if batch_max_pending < 1:
            raise ValueError(
                f"batch_max_pending must be at least 1, got {batch_max_pending}"
            )

        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.max_entry_bytes = max_entry_bytes
        self.max_entries = max_entries
        self.max_age = max_age
        self.durability = durability
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be normal or full, got {synchronous!r}")
        self.synchronous = synchronous
        self.batch_interval = batch_interval
        self.batch_max_pending = batch_max_pending
        self._clock = clock or SystemClock()

        self._connection: sqlite3.Connection | None = None
        self._limiter = anyio.CapacityLimiter(1)
        self._db_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._touched: dict[str, float] = {}
        self._last_purge = 0.0
        self._last_use = 0.0
        self._flusher: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._flush_failing = False

    # Lifecycle

    async def open(self) -> None:
        """Open the file, creating or migrating its tables.

        Raises `StorageError` naming the path when its directory is missing or
        not writable, when the file is not a SQLite database or is corrupt, or
        when it has a newer schema version than this code reads. Does nothing
        when the store is already open.
        """

        def connect_once() -> bool:
            with self._db_lock:
                if self._connection is not None:
                    return False
                self._connection = connect(
                    self.path,
                    busy_timeout=self.busy_timeout,
                    synchronous=self.synchronous.upper(),
                )
                return True

        # Shielded so that a cancelled startup cannot leak an open connection.
        with anyio.CancelScope(shield=True):
            opened = await anyio.to_thread.run_sync(connect_once, limiter=self._limiter)
        if not opened:
            return

        if self.durability == "batched":
            self._stopping.clear()
            self._flusher = threading.Thread(
                target=self._flush_loop, name=f"faultguard-sqlite-{self.path.name}"
            )
            self._flusher.daemon = True
            self._flusher.start()
        logger.info(
            "storage_opened",
            extra={"backend": "sqlite", "path": self._name, "mode": self.durability},
        )

    async def close(self) -> None:
        """Commit queued writes and close the connection. Safe to repeat.

        A queued write that fails to commit is logged as `storage_flush_failed`
        and lost.
        """
        if self._connection is None:
            return

        def shut_down() -> None:
            flusher = self._flusher
            self._flusher = None
            self._stopping.set()
            self._wake.set()
            if flusher is not None:
                flusher.join()
            with self._db_lock:
                connection = self._connection
                if connection is None:
                    return
                try:
                    self._flush_with(connection)
                except (sqlite3.Error, StorageError) as exc:
                    logger.error(
                        "storage_flush_failed",
                        extra={"path": self._name, "error": str(exc)},
                    )
                self._connection = None
                connection.close()

        # Shielded so that a cancelled shutdown still commits and releases the file.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shut_down, limiter=self._limiter)
        logger.info("storage_closed", extra={"backend": "sqlite", "path": self._name})

    # The fallback store contract

    async def get(self, key: EntryKey) -> StoredResponse | None:
        """Return the entry stored under `key`, or None if there is none.

        A queued `batched` write is returned before it is committed.
        """
        digest = key.digest
        now = self._clock.wall()
        with self._pending_lock:
            pending = self._pending.get(digest)
        if pending is not None and not self._expired(pending[1].stored_at, now):
            self._touch(digest, now)
            return pending[1]

        def select(connection: sqlite3.Connection) -> StoredResponse | None:
            row = connection.execute(_SELECT, (digest,)).fetchone()
            if row is None:
                return None
            status_code, headers, body, fetched_at, stored_at = row
            return StoredResponse(
                status_code=status_code,
                headers=_decode_headers(headers),
                body=bytes(body),
                fetched_at=fetched_at,
                stored_at=stored_at,
            )

        stored = await self._run("read", select)
        if stored is None or self._expired(stored.stored_at, now):
            return None
        self._touch(digest, now)
        return stored

    async def put(self, key: EntryKey, response: StoredResponse) -> bool:
        """Store `response` unless it is too large, expired or older than the entry.

        An equal `fetched_at` overwrites. In `sync` mode, returns whether the
        row was written. In `batched` mode, returns whether the entry was
        queued: a newer queued entry rejects it at once, and a newer row that
        another process committed to the file wins at commit time.
        """
        if len(response.body) > self.max_entry_bytes:
            return False
        if self._expired(response.stored_at, self._clock.wall()):
            return False

        if self.durability == "sync":
            item = (key, response, self._use_stamp(self._clock.wall()))
            results = await self._run(
                "write", lambda connection: self._write(connection, [item])
            )
            return results[0]

        return await self._enqueue(key, response)

    async def delete(self, key: EntryKey) -> bool:
        """Remove the queued or committed entry under `key`; returns if it existed."""
        digest = key.digest

        def remove(connection: sqlite3.Connection) -> bool:
            with self._pending_lock:
                queued = self._pending.pop(digest, None) is not None
                self._touched.pop(digest, None)
            cursor = connection.execute("DELETE FROM entries WHERE id = ?", (digest,))
            return queued or cursor.rowcount > 0

        return await self._run("delete", remove)

    async def expire(self) -> int:
        """Delete every row past `max_age`; returns how many rows were deleted."""
        if self.max_age is None:
            return 0
        now = self._clock.wall()

        def purge(connection: sqlite3.Connection) -> int:
            return run_in_transaction(connection, lambda inner: self._purge(inner, now))

        return await self._run("expire", purge)

    async def flush(self) -> None:
        """Commit every queued write now."""
        await self._run("flush", self._flush_with)

    async def check(self) -> None:
        """Run `SELECT 1`, raising `StorageError` if the store is closed or broken."""

        def select_one(connection: sqlite3.Connection) -> None:
            connection.execute("SELECT 1").fetchone()

        await self._run("check", select_one)

    # Internals

    @property
    def _name(self) -> str:
        return str(self.path)

    def _use_stamp(self, now: float) -> float:
        """Return `now`, raised above every earlier stamp of this store.

        Uses within one clock tick (or under a fake clock) still get a
        strict LRU order.
        """
        self._last_use = max(now, self._last_use + 1e-6)
        return self._last_use

    def _expired(self, stored_at: float, now: float) -> bool:
        return self.max_age is not None and now - stored_at > self.max_age

    def _touch(self, digest: str, now: float) -> None:
        if self.max_entries is None:
            return
        with self._pending_lock:
            self._touched[digest] = self._use_stamp(now)

    async def _enqueue(self, key: EntryKey, response: StoredResponse) -> bool:
        digest = key.digest
        while True:
            with self._pending_lock:
                queued = self._pending.get(digest)
                newer_queued = (
                    queued is not None
                    and queued[1].fetched_at > response.fetched_at
                    and not self._expired(queued[1].stored_at, self._clock.wall())
                )
                if newer_queued:
                    return False
                if queued is not None or len(self._pending) < self.batch_max_pending:
                    stamp = self._use_stamp(self._clock.wall())
                    self._pending[digest] = (key, response, stamp)
                    return True
            # The queue is full: commit it here, so the caller waits instead of
            # the queue growing without bound.
            await self.flush()

    async def _run(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` on the connection in a worker thread, translating errors."""

        def call() -> T:
            with self._db_lock:
                # Read at run time: `close` may have run while this call waited.
                connection = self._connection
                if connection is None:
                    raise StorageError(
                        f"SQLite fallback store {self._name!r} is not open;"
                        " call open() before using it"
                    )
                return work(connection)

        try:
            return await anyio.to_thread.run_sync(call, limiter=self._limiter)
        except sqlite3.Error as exc:
            raise StorageError(
                f"SQLite fallback store {self._name!r}: {action} failed: {exc}"
            ) from exc

    def _write(
        self, connection: sqlite3.Connection, items: Sequence[_Pending]
    ) -> list[bool]:
        """Write `items`, queued touches, evictions and a due purge in one transaction.

        Runs in the thread that has acquired `_db_lock`.
        """
        now = self._clock.wall()
        with self._pending_lock:
            touched = self._touched
            self._touched = {}

        def transaction(inner: sqlite3.Connection) -> list[bool]:
            results = [
                self._upsert(inner, key, response, stamp, now)
                for key, response, stamp in items
            ]
            inner.executemany(
                "UPDATE entries SET last_used = MAX(last_used, ?) WHERE id = ?",
                [(used, digest) for digest, used in touched.items()],
            )
            if self.max_entries is not None and any(results):
                (count,) = inner.execute(
                    "SELECT entries FROM entry_stats WHERE id = 1"
                ).fetchone()
                if count > self.max_entries:
                    inner.execute(_EVICT, (count - self.max_entries,))
            if self.max_age is not None and now - self._last_purge >= PURGE_INTERVAL:
                self._purge(inner, now)
                self._last_purge = now
            return results

        return run_in_transaction(connection, transaction)

    def _upsert(
        self,
        connection: sqlite3.Connection,
        key: EntryKey,
        response: StoredResponse,
        stamp: float,
        now: float,
    ) -> bool:
        """Write one row unless the row there is newer and not expired."""
        digest = key.digest
        current = connection.execute(
            "SELECT fetched_at, stored_at FROM entries WHERE id = ?", (digest,)
        ).fetchone()
        if current is not None:
            fetched_at, stored_at = current
            if fetched_at > response.fetched_at and not self._expired(stored_at, now):
                return False

        connection.execute(
            _UPSERT,
            (
                digest,
                key.key,
                key.method,
                key.url,
                response.status_code,
                json.dumps([list(pair) for pair in response.headers]),
                response.body,
                response.fetched_at,
                response.stored_at,
                stamp,
                len(response.body),
            ),
        )
        return True

    def _purge(self, connection: sqlite3.Connection, now: float) -> int:
        assert self.max_age is not None
        cursor = connection.execute(
            "DELETE FROM entries WHERE stored_at < ?", (now - self.max_age,)
        )
        return cursor.rowcount

    def _flush_with(self, connection: sqlite3.Connection) -> None:
        """Commit the queue in one transaction; on failure, queue it again."""
        with self._pending_lock:
            batch = list(self._pending.values())
            self._pending = {}
            has_touches = bool(self._touched)
        if not batch and not has_touches:
            return

        try:
            self._write(connection, batch)
        except BaseException:
            with self._pending_lock:
                for key, response, stamp in batch:
                    # A newer put may have been queued while this batch failed.
                    queued = self._pending.get(key.digest)
                    if queued is None or queued[1].fetched_at < response.fetched_at:
                        self._pending[key.digest] = (key, response, stamp)
            raise

    def _flush_loop(self) -> None:
        """Commit the queue every `batch_interval` seconds until the store closes."""
        while not self._stopping.is_set():
            self._wake.wait(self.batch_interval)
            self._wake.clear()
            started = time.monotonic()
            with self._db_lock:
                connection = self._connection
                if connection is None:
                    return
                try:
                    self._flush_with(connection)
                except sqlite3.Error as exc:
                    if not self._flush_failing:
                        logger.error(
                            "storage_flush_failed",
                            extra={"path": self._name, "error": str(exc)},
                        )
                    self._flush_failing = True
                    continue
            if self._flush_failing:
                self._flush_failing = False
                logger.warning("storage_flush_recovered", extra={"path": self._name})
            # NOTE: a commit slower than batch_interval lengthens the loss window
            # by its own duration; it is not measured here beyond this debug line.
            elapsed = time.monotonic() - started
            if elapsed > self.batch_interval:
                logger.debug(
                    "storage_flush_slow", extra={"path": self._name, "seconds": elapsed}
                )


def _decode_headers(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(name), str(value)) for name, value in json.loads(text))


def _build(settings: Settings) -> SQLiteStore:
    from faultguard_core.storage.memory import max_age_of

    return SQLiteStore(
        settings.storage.path,
        busy_timeout=settings.storage.busy_timeout,
        max_entry_bytes=settings.storage.max_entry_bytes,
        max_entries=settings.storage.max_entries,
        max_age=max_age_of(settings),
        durability=settings.storage.durability,
        synchronous=settings.storage.synchronous,
        batch_interval=settings.storage.batch_interval,
        batch_max_pending=settings.storage.batch_max_pending,
    )


def _build_state(settings: Settings) -> SQLiteBreakerStateStore:
    from faultguard_core.storage.sqlite_state import SQLiteBreakerStateStore

    return SQLiteBreakerStateStore(
        settings.storage.path, busy_timeout=settings.storage.busy_timeout
    )


@hookimpl
def faultguard_register_storage_backends(
    register: Callable[[str, StorageFactory], None],
) -> None:
    """Register the `sqlite` fallback store."""
    register("sqlite", _build)


@hookimpl
def faultguard_register_breaker_state_stores(
    register: Callable[[str, BreakerStateStoreFactory], None],
) -> None:
    """Register the `sqlite` breaker state store, in the same file."""
    register("sqlite", _build_state)
