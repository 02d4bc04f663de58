"""The `sqlite` breaker state store: breaker rows in the fallback store's file.

Every process that opens the same file shares these rows, and they survive
a restart, so an open breaker stays open across one (`breaker.persist_state`).
Each change runs the rules of `transitions` inside `BEGIN IMMEDIATE`, so two
processes never both take the last probe slot. Time is the wall clock of the
calling process, which all processes on one machine share.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from faultguard_core.clock import Clock, SystemClock
from faultguard_core.errors import StorageError
from faultguard_core.storage import transitions
from faultguard_core.storage._sqlite_schema import connect, run_in_transaction
from faultguard_core.storage.base import (
    Admission,
    BreakerPolicy,
    BreakerRecord,
    BreakerStateStore,
    RecordResult,
    SharedBreakerState,
    SharedOutcome,
)
from faultguard_core.storage.transitions import BreakerRow

logger = logging.getLogger("faultguard")

T = TypeVar("T")

_COLUMNS = (
    "state, generation, failures, open_until, probes_in_flight, probe_successes,"
    " probe_deadline"
)

_UPSERT = f"""
INSERT INTO breakers (name, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(name) DO UPDATE SET
    state = excluded.state,
    generation = excluded.generation,
    failures = excluded.failures,
    open_until = excluded.open_until,
    probes_in_flight = excluded.probes_in_flight,
    probe_successes = excluded.probe_successes,
    probe_deadline = excluded.probe_deadline
"""


class SQLiteBreakerStateStore(BreakerStateStore):
    """Breaker state in the `breakers` table of the SQLite file at `path`.

    A call that changes nothing (an admission while closed, a success with
    no failures counted) only reads, so a healthy breaker costs one indexed
    `SELECT` per call and no write. Every `sqlite3` error is raised as
    `StorageError` naming the path.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._clock = clock or SystemClock()
        self._connection: sqlite3.Connection | None = None
        self._limiter = anyio.CapacityLimiter(1)

    async def open(self) -> None:
        """Open the file, creating or migrating its tables; see `SQLiteStore.open`."""

        def connect_once() -> None:
            if self._connection is None:
                self._connection = connect(
                    self.path,
                    busy_timeout=self.busy_timeout,
                    synchronous="FULL",
                    role="breaker state store",
                )

        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(connect_once, limiter=self._limiter)

    async def close(self) -> None:
        """Close the connection. Safe to repeat."""
        connection = self._connection
        if connection is None:
            return
        self._connection = None
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(connection.close, limiter=self._limiter)

    async def check(self) -> None:
        """Run `SELECT 1`, raising `StorageError` if closed or broken."""
        await self._run("check", lambda connection: connection.execute("SELECT 1"))

    async def acquire(self, name: str, policy: BreakerPolicy) -> Admission:
        """Admit or reject one call to `name`, in one transaction when it writes."""
        now = self._clock.wall()

        def work(connection: sqlite3.Connection) -> Admission:
            row = _load(connection, name)
            if row is not None and row.state is SharedBreakerState.CLOSED:
                return Admission(True, row.generation, False, row.state, 0.0)
            if row is None:
                return Admission(True, 0, False, SharedBreakerState.CLOSED, 0.0)
            return self._change(connection, name, now, transitions.acquire, policy)

        return await self._run("acquire", work)

    async def record(
        self,
        name: str,
        policy: BreakerPolicy,
        generation: int,
        probe: bool,
        outcome: SharedOutcome,
    ) -> RecordResult:
        """Count one outcome of a call to `name`."""
        now = self._clock.wall()

        def apply(row: BreakerRow, _policy: BreakerPolicy, at: float) -> RecordResult:
            return transitions.record(row, _policy, generation, probe, outcome, at)

        def work(connection: sqlite3.Connection) -> RecordResult:
            row = _load(connection, name) or BreakerRow()
            unchanged = (
                row.state is SharedBreakerState.CLOSED
                and outcome is not SharedOutcome.FAILURE
                and row.failures == 0
            )
            if unchanged or row.generation != generation:
                return RecordResult(row.state)
            return self._change(connection, name, now, apply, policy)

        return await self._run("record", work)

    async def read(self, name: str, policy: BreakerPolicy) -> BreakerRecord:
        """Return the state of `name`, reporting a due half-open without writing it."""
        now = self._clock.wall()

        def work(connection: sqlite3.Connection) -> BreakerRecord:
            row = _load(connection, name) or BreakerRow()
            transitions.refresh(row, now)
            return row.record(now)

        return await self._run("read", work)

    async def trip(
        self, name: str, policy: BreakerPolicy, open_remaining: float
    ) -> RecordResult:
        """Open `name` for at least `open_remaining` seconds."""
        now = self._clock.wall()

        def apply(row: BreakerRow, _policy: BreakerPolicy, at: float) -> RecordResult:
            return transitions.trip(row, open_remaining, at)

        return await self._run(
            "trip",
            lambda connection: self._change(connection, name, now, apply, policy),
        )

    def _change(
        self,
        connection: sqlite3.Connection,
        name: str,
        now: float,
        apply: Callable[[BreakerRow, BreakerPolicy, float], T],
        policy: BreakerPolicy,
    ) -> T:
        """Read the row, apply one rule and write it back, in `BEGIN IMMEDIATE`."""

        def transaction(inner: sqlite3.Connection) -> T:
            row = _load(inner, name) or BreakerRow()
            result = apply(row, policy, now)
            inner.execute(
                _UPSERT,
                (
                    name,
                    row.state.value,
                    row.generation,
                    row.failures,
                    row.open_until,
                    row.probes_in_flight,
                    row.probe_successes,
                    row.probe_deadline,
                ),
            )
            return result

        return run_in_transaction(connection, transaction)

    async def _run(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            connection = self._connection
            if connection is None:
                raise StorageError(
                    f"SQLite breaker state store {str(self.path)!r} is not open;"
                    " call open() before using it"
                )
            return work(connection)

        try:
            return await anyio.to_thread.run_sync(call, limiter=self._limiter)
        except sqlite3.Error as exc:
            raise StorageError(
                f"SQLite breaker state store {str(self.path)!r}: {action} failed: {exc}"
            ) from exc


def _load(connection: sqlite3.Connection, name: str) -> BreakerRow | None:
    found = connection.execute(
        f"SELECT {_COLUMNS} FROM breakers WHERE name = ?", (name,)
    ).fetchone()
    if found is None:
        return None
    state, generation, failures, open_until, in_flight, successes, deadline = found
    return BreakerRow(
        state=SharedBreakerState(state),
        generation=generation,
        failures=failures,
        open_until=open_until,
        probes_in_flight=in_flight,
        probe_successes=successes,
        probe_deadline=deadline,
    )
