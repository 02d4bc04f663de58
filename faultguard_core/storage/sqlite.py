"""The `sqlite` fallback store: one SQLite file, accessed from a worker thread.

The store uses one connection in WAL journal mode with `synchronous=NORMAL`.
Every statement runs in a worker thread through `anyio.to_thread.run_sync`
with a `CapacityLimiter(1)`, so the event loop never waits on disk and only
one thread uses the connection at a time. Other processes and other
`SQLiteStore` objects may open the same file. SQLite's busy timeout makes
their writes wait up to `busy_timeout` seconds for each other before failing
with "database is locked".
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread

from faultguard_core._markers import hookimpl
from faultguard_core.errors import StorageError
from faultguard_core.storage.base import EntryKey, FallbackStore, StoredResponse

if TYPE_CHECKING:
    from faultguard_core.hookspecs import StorageFactory
    from faultguard_core.settings import Settings

logger = logging.getLogger("faultguard")

T = TypeVar("T")

SCHEMA_VERSION = 1
"""The schema version that this code creates and reads."""

DEFAULT_BUSY_TIMEOUT = 5.0
DEFAULT_MAX_ENTRY_BYTES = 1_048_576

_CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)
"""

_CREATE_ENTRIES_TABLE = """
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    method TEXT NOT NULL,
    url TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    fetched_at REAL NOT NULL,
    stored_at REAL NOT NULL
)
"""

_UPSERT = """
INSERT INTO entries (
    id, key, method, url, status_code, headers, body, fetched_at, stored_at
)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET
    status_code = excluded.status_code,
    headers = excluded.headers,
    body = excluded.body,
    fetched_at = excluded.fetched_at,
    stored_at = excluded.stored_at
WHERE excluded.fetched_at >= entries.fetched_at
"""

_SELECT = """
SELECT status_code, headers, body, fetched_at, stored_at FROM entries WHERE id = ?
"""


class SQLiteStore(FallbackStore):
    """A fallback store in the SQLite file at `path`.

    Rows are keyed by `EntryKey.digest`. The `key`, `method` and `url` columns
    are kept for operators who inspect the file, and the credentials hash is
    only part of the digest. `busy_timeout` is in seconds. An entry whose body
    is longer than `max_entry_bytes` is not stored. Every `sqlite3` error is
    raised as `StorageError` naming the path.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
    ) -> None:
        if busy_timeout < 0:
            raise ValueError(f"busy_timeout must be >= 0 seconds, got {busy_timeout}")
        if max_entry_bytes < 1:
            raise ValueError(
                f"max_entry_bytes must be at least 1, got {max_entry_bytes}"
            )

        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.max_entry_bytes = max_entry_bytes
        self._connection: sqlite3.Connection | None = None
        self._limiter = anyio.CapacityLimiter(1)

    async def open(self) -> None:
        """Open the file, creating it and its tables if missing.

        Raises `StorageError` naming the path when its directory is missing or
        not writable, when the file is not a SQLite database, or when the file
        has a newer schema version than this code reads. Does nothing when the
        store is already open.
        """

        def connect_once() -> bool:
            # Checked in the worker thread, so concurrent opens connect once.
            if self._connection is not None:
                return False
            self._connection = self._connect()
            return True

        # Shielded so that a cancelled startup cannot leak an open connection.
        with anyio.CancelScope(shield=True):
            opened = await anyio.to_thread.run_sync(connect_once, limiter=self._limiter)
        if opened:
            logger.info(
                "storage_opened", extra={"backend": "sqlite", "path": self._name}
            )

    async def close(self) -> None:
        """Close the connection after any running statement. Safe to repeat."""
        connection = self._connection
        if connection is None:
            return

        self._connection = None
        # Shielded so that a cancelled shutdown still releases the file.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(connection.close, limiter=self._limiter)
        logger.info("storage_closed", extra={"backend": "sqlite", "path": self._name})

    async def get(self, key: EntryKey) -> StoredResponse | None:
        """Return the entry stored under `key`, or None if there is none."""

        def select(connection: sqlite3.Connection) -> StoredResponse | None:
            row = connection.execute(_SELECT, (key.digest,)).fetchone()
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

        return await self._run("read", select)

    async def put(self, key: EntryKey, response: StoredResponse) -> bool:
        """Upsert `response` unless it is too large or an older fetch than the row.

        An equal `fetched_at` overwrites. Returns whether a row was written.
        """
        if len(response.body) > self.max_entry_bytes:
            return False

        values = (
            key.digest,
            key.key,
            key.method,
            key.url,
            response.status_code,
            json.dumps([list(pair) for pair in response.headers]),
            response.body,
            response.fetched_at,
            response.stored_at,
        )

        def upsert(connection: sqlite3.Connection) -> bool:
            return connection.execute(_UPSERT, values).rowcount > 0

        return await self._run("write", upsert)

    async def delete(self, key: EntryKey) -> bool:
        """Remove the row under `key` and return whether it existed."""

        def remove(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "DELETE FROM entries WHERE id = ?", (key.digest,)
            )
            return cursor.rowcount > 0

        return await self._run("delete", remove)

    async def check(self) -> None:
        """Run `SELECT 1`, raising `StorageError` if the store is closed or broken."""

        def select_one(connection: sqlite3.Connection) -> None:
            connection.execute("SELECT 1").fetchone()

        await self._run("check", select_one)

    @property
    def _name(self) -> str:
        return str(self.path)

    async def _run(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` on the connection in the worker thread, translating errors."""

        def call() -> T:
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

    def _connect(self) -> sqlite3.Connection:
        """Open the connection and prepare the file. Runs in the worker thread."""
        directory = self.path.parent
        if not directory.is_dir():
            raise StorageError(
                f"cannot open SQLite fallback store {self._name!r}: directory"
                f" {str(directory)!r} does not exist; create it or set storage.path"
                " to a file in an existing directory"
            )

        try:
            # isolation_level=None leaves transactions to the statements below,
            # so each write outside them commits on its own.
            connection = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StorageError(_open_failure(self._name, exc)) from exc

        try:
            self._prepare(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _prepare(self, connection: sqlite3.Connection) -> None:
        """Set the pragmas, check the schema version and create missing tables."""
        try:
            busy_timeout_ms = int(self.busy_timeout * 1000)
            connection.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            (journal_mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
            connection.execute("PRAGMA synchronous = NORMAL")

            # BEGIN IMMEDIATE takes the write lock first, so two stores opening
            # a new file at once cannot both insert a version row.
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(_CREATE_VERSION_TABLE)
            (version,) = connection.execute(
                "SELECT MAX(version) FROM schema_version"
            ).fetchone()
            if version is not None and version > SCHEMA_VERSION:
                connection.execute("ROLLBACK")
                raise StorageError(
                    f"SQLite fallback store {self._name!r} has schema version"
                    f" {version}, but this faultguard reads only versions up to"
                    f" {SCHEMA_VERSION}; upgrade faultguard or set storage.path"
                    " to another file"
                )

            connection.execute(_CREATE_ENTRIES_TABLE)
            if version is None:
                connection.execute(
                    "INSERT INTO schema_version (version) VALUES (?)",
                    (SCHEMA_VERSION,),
                )
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(_open_failure(self._name, exc)) from exc

        if str(journal_mode).lower() != "wal":
            logger.warning(
                "storage_wal_unavailable",
                extra={"path": self._name, "journal_mode": journal_mode},
            )


def _open_failure(name: str, exc: sqlite3.Error) -> str:
    """Describe why the file at `name` could not be opened, with what to do."""
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
        return (
            f"cannot open SQLite fallback store {name!r}: the file is not a"
            " SQLite database; move it away or set storage.path to another file"
        )
    return (
        f"cannot open SQLite fallback store {name!r}: {exc}; check that the"
        " directory is writable by this user, or set storage.path to a writable"
        " location"
    )


def _decode_headers(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(name), str(value)) for name, value in json.loads(text))


def _build(settings: Settings) -> SQLiteStore:
    return SQLiteStore(
        settings.storage.path,
        busy_timeout=settings.storage.busy_timeout,
        max_entry_bytes=settings.storage.max_entry_bytes,
    )


@hookimpl
def faultguard_register_storage_backends(
    register: Callable[[str, StorageFactory], None],
) -> None:
    """Register the `sqlite` backend."""
    register("sqlite", _build)
