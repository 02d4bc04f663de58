"""The SQLite file: connecting, the schema version table and forward migrations.

`connect(path, ...)` returns a connection whose file has the current schema.
A file of an older version is migrated inside one `BEGIN IMMEDIATE`
transaction, so two processes that start on the same old file migrate it
once. A newer version, a file that is not a database, a corrupt file or a
path that cannot be written raises `StorageError` naming the path and what
to do.

Versions:

1. `entries` (one row per `EntryKey.digest`) and `schema_version`.
2. `entries.last_used` and `entries.size` for LRU eviction, indexes on
   `last_used` and `stored_at`, `entry_stats` with a row count kept by
   triggers, and `breakers` for the breaker state store.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from faultguard_core.errors import StorageError

logger = logging.getLogger("faultguard")

T = TypeVar("T")

SCHEMA_VERSION = 2
"""The schema version that this code creates and reads."""

_VERSION_1 = (
    "CREATE TABLE IF NOT EXISTS entries ("
    " id TEXT PRIMARY KEY,"
    " key TEXT NOT NULL,"
    " method TEXT NOT NULL,"
    " url TEXT NOT NULL,"
    " status_code INTEGER NOT NULL,"
    " headers TEXT NOT NULL,"
    " body BLOB NOT NULL,"
    " fetched_at REAL NOT NULL,"
    " stored_at REAL NOT NULL"
    ")",
)

_VERSION_2 = (
    "ALTER TABLE entries ADD COLUMN last_used REAL NOT NULL DEFAULT 0",
    "ALTER TABLE entries ADD COLUMN size INTEGER NOT NULL DEFAULT 0",
    "UPDATE entries SET last_used = stored_at, size = length(body)",
    "CREATE INDEX IF NOT EXISTS entries_last_used ON entries (last_used)",
    "CREATE INDEX IF NOT EXISTS entries_stored_at ON entries (stored_at)",
    "CREATE TABLE IF NOT EXISTS entry_stats ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " entries INTEGER NOT NULL"
    ")",
    "INSERT OR REPLACE INTO entry_stats (id, entries) SELECT 1, COUNT(*) FROM entries",
    "CREATE TRIGGER IF NOT EXISTS entries_count_insert AFTER INSERT ON entries"
    " BEGIN UPDATE entry_stats SET entries = entries + 1 WHERE id = 1; END",
    "CREATE TRIGGER IF NOT EXISTS entries_count_delete AFTER DELETE ON entries"
    " BEGIN UPDATE entry_stats SET entries = entries - 1 WHERE id = 1; END",
    "CREATE TABLE IF NOT EXISTS breakers ("
    " name TEXT PRIMARY KEY,"
    " state TEXT NOT NULL,"
    " generation INTEGER NOT NULL,"
    " failures INTEGER NOT NULL,"
    " open_until REAL NOT NULL,"
    " probes_in_flight INTEGER NOT NULL,"
    " probe_successes INTEGER NOT NULL,"
    " probe_deadline REAL NOT NULL"
    ")",
)

MIGRATIONS: dict[int, tuple[str, ...]] = {1: _VERSION_1, 2: _VERSION_2}
"""The statements that bring a file from the version below the key to the key."""


def connect(
    path: Path,
    *,
    busy_timeout: float,
    synchronous: str,
    role: str = "fallback store",
) -> sqlite3.Connection:
    """Open `path` with WAL and `busy_timeout`, migrating it to `SCHEMA_VERSION`.

    `synchronous` is the SQLite `synchronous` pragma (`FULL` or `NORMAL`).
    Runs blocking I/O: call it from a worker thread.
    """
    name = str(path)
    directory = path.parent
    if not directory.is_dir():
        raise StorageError(
            f"cannot open SQLite {role} {name!r}: directory {str(directory)!r}"
            " does not exist; create it or set storage.path to a file in an"
            " existing directory"
        )

    try:
        # isolation_level=None leaves transactions to explicit BEGIN statements,
        # so each statement outside them commits on its own.
        connection = sqlite3.connect(
            path,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise StorageError(open_failure(name, role, exc)) from exc

    try:
        _prepare(connection, name, role, busy_timeout, synchronous)
    except BaseException:
        connection.close()
        raise
    return connection


def _prepare(
    connection: sqlite3.Connection,
    name: str,
    role: str,
    busy_timeout: float,
    synchronous: str,
) -> None:
    """Set the pragmas, check the schema version and run pending migrations."""
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        (journal_mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
        connection.execute(f"PRAGMA synchronous = {synchronous}")

        # BEGIN IMMEDIATE takes the write lock first, so two processes opening
        # an old or new file at once cannot both migrate it.
        connection.execute("BEGIN IMMEDIATE")
        try:
            migrated_from = _migrate(connection, name)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise StorageError(open_failure(name, role, exc)) from exc

    if migrated_from is not None:
        logger.warning(
            "storage_migrated",
            extra={"path": name, "from_version": migrated_from, "to": SCHEMA_VERSION},
        )
    if str(journal_mode).lower() != "wal":
        logger.warning(
            "storage_wal_unavailable",
            extra={"path": name, "journal_mode": journal_mode},
        )


def _migrate(connection: sqlite3.Connection, name: str) -> int | None:
    """Bring the file to `SCHEMA_VERSION`; returns the old version if it changed.

    A new file gets every migration. Runs inside the caller's transaction.
    """
    connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
    )
    row = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()
    version: int | None = row[0]
    if version is not None and version > SCHEMA_VERSION:
        raise StorageError(
            f"SQLite file {name!r} has schema version {version}, but this"
            f" faultguard reads only versions up to {SCHEMA_VERSION}; upgrade"
            " faultguard, or set storage.path to another file"
        )
    if version == SCHEMA_VERSION:
        return None

    current = version or 0
    for target in range(current + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[target]:
            connection.execute(statement)
    connection.execute("DELETE FROM schema_version")
    connection.execute(
        "INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,)
    )
    return version


def open_failure(name: str, role: str, exc: sqlite3.Error) -> str:
    """Describe why the file at `name` could not be opened, with what to do."""
    text = str(exc)
    if "not a database" in text:
        return (
            f"cannot open SQLite {role} {name!r}: the file is not a SQLite"
            " database; move it away or set storage.path to another file"
        )
    if "malformed" in text or "corrupt" in text:
        return (
            f"cannot open SQLite {role} {name!r}: the file is corrupt ({text});"
            " move it away so faultguard starts with an empty store, or restore"
            " it from a backup"
        )
    return (
        f"cannot open SQLite {role} {name!r}: {text}; check that the file and"
        " its directory are writable by this user, or set storage.path to a"
        " writable location"
    )


def run_in_transaction(
    connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]
) -> T:
    """Run `work` inside `BEGIN IMMEDIATE` and commit, or roll back on any error."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result
