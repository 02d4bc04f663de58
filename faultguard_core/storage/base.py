"""The fallback store contract: what every storage backend must do."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass


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
    """

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

    async def check(self) -> None:
        """Raise `StorageError` when the backend cannot serve requests now.

        Used by the readiness endpoint. The default does nothing.
        """
        return None
