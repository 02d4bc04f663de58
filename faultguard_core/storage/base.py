"""The two storage roles: the fallback store and the breaker state store.

A backend implements one role or both. `storage.backend` names the backend of
the fallback store and `storage.breaker_state` the backend of breaker state
(`local` keeps it in the process, as `CircuitBreaker` does).
"""

from __future__ import annotations

import enum
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class EntryKey:
    """Identity of a stored response.

    An entry is served only to a request with the same `key`, `method`, `url`
    and `credentials`. `credentials` is a hash of the caller's credential
    headers (empty string for an anonymous caller), never the secret itself.
    """

    key: str
    method: str
    url: str
    credentials: str = ""

    @property
    def digest(self) -> str:
        """A fixed-length id for backends that index by one string."""
        material = "\x00".join((self.key, self.method, self.url, self.credentials))
        return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A complete 2xx upstream response kept for fallback.

    `fetched_at` is the Unix time at which the upstream call started; a
    backend keeps the entry with the newest `fetched_at`, so a slow older
    response never overwrites a newer one. `stored_at` is the Unix time at
    which the response was complete.
    """

    status_code: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    fetched_at: float
    stored_at: float


class FallbackStore(ABC):
    """A backend that keeps the last good response per `EntryKey`.

    Methods are async; a backend with blocking I/O runs it in a worker thread
    so the event loop never waits on disk or network.

    A backend that sets `remote = True` is wrapped by the guard in a
    `DegradingFallbackStore`: when it raises `StorageError` or exceeds
    `operation_timeout` seconds, calls go to a local memory store until it
    answers again.
    """

    remote: ClassVar[bool] = False
    operation_timeout: float | None = None

    async def open(self) -> None:
        """Prepare the backend (create files, tables, connections).

        Called once before the first request. Raises `StorageError` with the
        path or address and what to do when the backend cannot be used.
        """
        return None

    async def close(self) -> None:
        """Release resources. Called once at shutdown; must be safe to repeat."""
        return None

    @abstractmethod
    async def get(self, key: EntryKey) -> StoredResponse | None:
        """Return the entry stored under exactly `key`, or None if there is none."""

    @abstractmethod
    async def put(self, key: EntryKey, response: StoredResponse) -> bool:
        """Store `response` under `key` unless a newer entry is already there.

        Returns True when the entry was written and False when an entry with
        a later `fetched_at` was kept instead.
        """

    @abstractmethod
    async def delete(self, key: EntryKey) -> bool:
        """Remove the entry; returns False (and does nothing) if it was missing."""

    @abstractmethod
    async def expire(self) -> int:
        """Delete every entry older than the store's maximum age.

        An entry's age is the store clock's Unix time minus its `stored_at`.
        `get` never returns an entry past the maximum age, whether or not
        `expire` has removed it yet. Returns the number of entries removed,
        which is 0 for a store without a maximum age.
        """

    async def flush(self) -> None:
        """Write out every accepted `put` that is still buffered.

        A store that writes behind (SQLite in `batched` mode) commits its
        queue; `close` flushes too. The default does nothing.
        """
        return None

    async def check(self) -> None:
        """Raise `StorageError` when the backend cannot serve requests now.

        Used by the readiness endpoint. The default does nothing.
        """
        return None


class SharedBreakerState(enum.Enum):
    """A breaker state as a breaker state store keeps it.

    The values equal those of `faultguard_core.breaker.BreakerState`, so the
    guard converts with `BreakerState(state.value)`.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class SharedOutcome(enum.Enum):
    """How a finished attempt counts; the values equal those of `Outcome`."""

    SUCCESS = "success"
    FAILURE = "failure"
    EXCLUDED = "excluded"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """The thresholds a breaker state store applies to one breaker.

    The store implements the consecutive-failures policy: `max_failures`
    consecutive failures open the breaker for `open_duration` seconds, then
    at most `half_open_max_calls` probes run at once across every process
    that shares the store, and that many successes close it. A probe slot
    that is not reported within `probe_timeout` seconds is reclaimed, so a
    process that dies during a probe cannot leave the breaker half-open.
    """

    max_failures: int
    open_duration: float
    half_open_max_calls: int
    probe_timeout: float


@dataclass(frozen=True, slots=True)
class BreakerRecord:
    """A consistent view of one breaker in a breaker state store.

    `open_remaining` is in seconds and 0.0 unless the breaker is open.
    `generation` changes on every transition.
    """

    state: SharedBreakerState
    generation: int
    failures: int
    probes_in_flight: int
    probe_successes: int
    open_remaining: float


@dataclass(frozen=True, slots=True)
class Admission:
    """The result of `BreakerStateStore.acquire`.

    When `admitted` is False, `retry_after` is the number of seconds until
    the breaker admits a probe (0.0 when it is half-open with every probe
    slot taken). `previous` is the state before a transition that this call
    made (open to half-open when the open period ended), else None.
    """

    admitted: bool
    generation: int
    probe: bool
    state: SharedBreakerState
    retry_after: float
    previous: SharedBreakerState | None = None


@dataclass(frozen=True, slots=True)
class RecordResult:
    """The state after `BreakerStateStore.record` or `trip`.

    `previous` is the state before a transition that this call made, else None.
    """

    state: SharedBreakerState
    previous: SharedBreakerState | None = None


class BreakerStateStore(ABC):
    """A backend that keeps breaker state, possibly shared by many processes.

    Every method is one atomic step on the stored state: no lock is held
    between `acquire` and `record`, so the upstream call runs unlocked. A
    permit from `acquire` names the generation it was admitted in, and
    `record` ignores a result from an older generation. Time comes from the
    store (the database's or server's clock), never from the caller, so
    processes with skewed clocks agree on when an open period ends.

    Methods raise `StorageError` when the backend cannot be reached or fails.
    The guard waits at most `operation_timeout` seconds (None: no limit) for
    a method before it uses the local breaker instead.
    """

    operation_timeout: float | None = None

    async def open(self) -> None:
        """Prepare the backend; raises `StorageError` naming what to fix."""
        return None

    async def close(self) -> None:
        """Release resources. Must be safe to repeat."""
        return None

    async def check(self) -> None:
        """Raise `StorageError` when the backend cannot serve requests now."""
        return None

    @abstractmethod
    async def acquire(self, name: str, policy: BreakerPolicy) -> Admission:
        """Admit one call to breaker `name` or reject it.

        Turns an open breaker whose open period ended into half-open first,
        and takes a probe slot when half-open. A breaker that was never seen
        starts closed.
        """

    @abstractmethod
    async def record(
        self,
        name: str,
        policy: BreakerPolicy,
        generation: int,
        probe: bool,
        outcome: SharedOutcome,
    ) -> RecordResult:
        """Count the outcome of a call admitted in `generation`.

        A result of an older generation changes nothing. A probe's result
        frees its slot, and an excluded probe only frees it.
        """

    @abstractmethod
    async def read(self, name: str, policy: BreakerPolicy) -> BreakerRecord:
        """Return the breaker's state and counts, after a due open-to-half-open."""

    @abstractmethod
    async def trip(
        self, name: str, policy: BreakerPolicy, open_remaining: float
    ) -> RecordResult:
        """Open the breaker for at least `open_remaining` more seconds.

        An open breaker whose period ends later stays as it is. Used to
        publish a breaker that opened locally while the store was unreachable.
        """
