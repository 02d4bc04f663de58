"""The `memory` fallback store: a bounded in-process dict, lost on restart."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from faultguard_core._markers import hookimpl
from faultguard_core.storage.base import EntryKey, FallbackStore, StoredResponse

if TYPE_CHECKING:
    from faultguard_core.hookspecs import StorageFactory
    from faultguard_core.settings import Settings

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_ENTRY_BYTES = 1_048_576


class MemoryStore(FallbackStore):
    """A dict-backed store that keeps at most `max_entries` entries.

    When a `put` of a new key would exceed `max_entries`, the least recently
    used entry is evicted. A hit in `get` and a successful `put` count as a
    use, and a `put` rejected for being older or too large does not. An entry
    whose body is longer than `max_entry_bytes` is not stored.

    Every method runs without awaiting, so each call is atomic on one event
    loop. The store is not thread-safe: use it from one event loop only.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if max_entry_bytes < 1:
            raise ValueError(
                f"max_entry_bytes must be at least 1, got {max_entry_bytes}"
            )

        self.max_entries = max_entries
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[EntryKey, StoredResponse] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def close(self) -> None:
        """Drop every entry. Safe to call more than once."""
        self._entries.clear()

    async def get(self, key: EntryKey) -> StoredResponse | None:
        """Return the entry under `key` and mark it as the most recently used."""
        response = self._entries.get(key)
        if response is not None:
            self._entries.move_to_end(key)
        return response

    async def put(self, key: EntryKey, response: StoredResponse) -> bool:
        """Store `response` unless it is too large or an older fetch than the entry.

        An equal `fetched_at` overwrites. Evicts the least recently used entry
        when a new key pushes the store past `max_entries`.
        """
        if len(response.body) > self.max_entry_bytes:
            return False

        current = self._entries.get(key)
        if current is not None and current.fetched_at > response.fetched_at:
            return False

        self._entries[key] = response
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    async def delete(self, key: EntryKey) -> bool:
        """Remove the entry under `key` and return whether it existed."""
        return self._entries.pop(key, None) is not None


def _build(settings: Settings) -> MemoryStore:
    return MemoryStore(max_entry_bytes=settings.storage.max_entry_bytes)


@hookimpl
def faultguard_register_storage_backends(
    register: Callable[[str, StorageFactory], None],
) -> None:
    """Register the `memory` backend."""
    register("memory", _build)
