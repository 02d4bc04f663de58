"""The `memory` fallback store: a bounded in-process dict, lost on restart."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from faultguard_core._markers import hookimpl
from faultguard_core.clock import Clock, SystemClock
from faultguard_core.storage.base import EntryKey, FallbackStore, StoredResponse

if TYPE_CHECKING:
    from faultguard_core.hookspecs import StorageFactory
    from faultguard_core.settings import Settings

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_ENTRY_BYTES = 1_048_576
DEFAULT_MAX_BYTES = 268_435_456


def entry_size(response: StoredResponse) -> int:
    """Return the bytes an entry counts against a byte limit: body plus headers."""
    header_bytes = sum(len(name) + len(value) for name, value in response.headers)
    return len(response.body) + header_bytes


class MemoryStore(FallbackStore):
    """A dict-backed store bounded by entry count and total bytes.

    When a `put` would exceed `max_entries` entries or `max_bytes` bytes (as
    counted by `entry_size`), the least recently used entries are evicted
    until it fits. A hit in `get` and a successful `put` count as a use, and
    a `put` rejected for being older or too large does not. An entry whose
    body is longer than `max_entry_bytes`, or whose size is above
    `max_bytes`, is not stored.

    With `max_age` (seconds), `get` returns no entry whose `stored_at` is
    more than `max_age` before the wall time of `clock`, and `expire`
    deletes those entries. None means no age limit.

    Every method runs without awaiting, so each call is atomic on one event
    loop. The store is not thread-safe: use it from one event loop only.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if max_entry_bytes < 1:
            raise ValueError(
                f"max_entry_bytes must be at least 1, got {max_entry_bytes}"
            )
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        if max_age is not None and max_age <= 0:
            raise ValueError(f"max_age must be above 0 seconds or None, got {max_age}")

        self.max_entries = max_entries
        self.max_entry_bytes = max_entry_bytes
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._clock = clock or SystemClock()
        self._entries: OrderedDict[EntryKey, StoredResponse] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        """The sum of `entry_size` over every stored entry."""
        return self._bytes

    async def close(self) -> None:
        """Drop every entry. Safe to call more than once."""
        self._entries.clear()
        self._bytes = 0

    async def get(self, key: EntryKey) -> StoredResponse | None:
        """Return the entry under `key` and mark it as the most recently used.

        An entry past `max_age` is deleted and not returned.
        """
        response = self._entries.get(key)
        if response is None:
            return None

        if self._expired(response, self._clock.wall()):
            self._remove(key)
            return None

        self._entries.move_to_end(key)
        return response

    async def put(self, key: EntryKey, response: StoredResponse) -> bool:
        """Store `response` unless it is too large or an older fetch than the entry.

        An equal `fetched_at` overwrites. An entry past `max_age` does not
        count as newer, so any fresh response replaces it.
        """
        size = entry_size(response)
        if len(response.body) > self.max_entry_bytes or size > self.max_bytes:
            return False

        now = self._clock.wall()
        if self._expired(response, now):
            return False
        current = self._entries.get(key)
        if (
            current is not None
            and not self._expired(current, now)
            and current.fetched_at > response.fetched_at
        ):
            return False

        self._remove(key)
        self._entries[key] = response
        self._bytes += size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= entry_size(evicted)
        return True

    async def delete(self, key: EntryKey) -> bool:
        """Remove the entry under `key` and return whether it existed."""
        return self._remove(key)

    async def expire(self) -> int:
        """Delete every entry past `max_age`; returns how many were deleted."""
        if self.max_age is None:
            return 0

        now = self._clock.wall()
        stale = [
            key for key, entry in self._entries.items() if self._expired(entry, now)
        ]
        for key in stale:
            self._remove(key)
        return len(stale)

    def items(self) -> list[tuple[EntryKey, StoredResponse]]:
        """Return every entry, least recently used first, without marking a use."""
        return list(self._entries.items())

    def _expired(self, response: StoredResponse, now: float) -> bool:
        return self.max_age is not None and now - response.stored_at > self.max_age

    def _remove(self, key: EntryKey) -> bool:
        removed = self._entries.pop(key, None)
        if removed is None:
            return False
        self._bytes -= entry_size(removed)
        return True


def max_age_of(settings: Settings) -> float | None:
    """Return `fallback.max_age` in seconds, or None when it is 0 (no limit)."""
    max_age = settings.fallback.max_age
    return max_age if max_age > 0 else None


def _build(settings: Settings) -> MemoryStore:
    return MemoryStore(
        max_entries=settings.storage.max_entries,
        max_entry_bytes=settings.storage.max_entry_bytes,
        max_bytes=settings.storage.max_bytes,
        max_age=max_age_of(settings),
    )


@hookimpl
def faultguard_register_storage_backends(
    register: Callable[[str, StorageFactory], None],
) -> None:
    """Register the `memory` backend."""
    register("memory", _build)
