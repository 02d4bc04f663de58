"""A fallback store that falls back to memory while a remote backend is down."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from faultguard_core.clock import Clock, SystemClock
from faultguard_core.errors import StorageError
from faultguard_core.storage._outage import RECONNECT_INTERVAL, StoreOutage, bounded
from faultguard_core.storage.base import EntryKey, FallbackStore, StoredResponse
from faultguard_core.storage.memory import MemoryStore

T = TypeVar("T")

__all__ = ["RECONNECT_INTERVAL", "DegradingFallbackStore"]


class DegradingFallbackStore(FallbackStore):
    """Serves from `primary`, and from `local` while `primary` fails.

    A call to `primary` that raises `StorageError` or takes longer than
    `primary.operation_timeout` seconds switches the store to degraded: that
    call and every later one use `local`, and `primary` is tried again after
    `RECONNECT_INTERVAL` seconds. Recovery writes every entry of `local` to
    `primary` (newer-wins, as any `put`) and empties `local`; a failure
    during that keeps the store degraded. Degradation and recovery are each
    logged once per episode, and the `on_degraded` callback (an attribute
    the guard sets) counts degradations.

    A `primary` that cannot be opened at start-up starts the store degraded
    instead of stopping start-up, so the process answers from the start.
    """

    def __init__(
        self,
        primary: FallbackStore,
        local: MemoryStore,
        *,
        on_degraded: Callable[[], None] = lambda: None,
        clock: Clock | None = None,
    ) -> None:
        self.primary = primary
        self.local = local
        self.on_degraded = on_degraded
        # A lambda, because the guard sets `on_degraded` after construction.
        self._outage = StoreOutage(
            "fallback_store", clock or SystemClock(), lambda: self.on_degraded()
        )
        self._opened = False

    @property
    def degraded(self) -> bool:
        """True while calls use the local memory store."""
        return self._outage.active

    async def open(self) -> None:
        """Open `primary`, or start degraded when it cannot be reached."""
        try:
            await self._call(self.primary.open())
            self._opened = True
        except (StorageError, TimeoutError) as exc:
            self._degrade(exc)

    async def close(self) -> None:
        """Close both stores. Safe to repeat."""
        await self.primary.close()
        await self.local.close()

    async def get(self, key: EntryKey) -> StoredResponse | None:
        """Return the entry from `primary`, or from `local` while degraded."""
        if await self._usable():
            try:
                return await self._call(self.primary.get(key))
            except (StorageError, TimeoutError) as exc:
                self._degrade(exc)
        return await self.local.get(key)

    async def put(self, key: EntryKey, response: StoredResponse) -> bool:
        """Store in `primary`, or in `local` while degraded."""
        if await self._usable():
            try:
                return await self._call(self.primary.put(key, response))
            except (StorageError, TimeoutError) as exc:
                self._degrade(exc)
        return await self.local.put(key, response)

    async def delete(self, key: EntryKey) -> bool:
        """Delete from both stores; returns whether either had the entry.

        While degraded, the entry in `primary` stays there and may be served
        again after recovery.
        """
        deleted = await self.local.delete(key)
        if await self._usable():
            try:
                deleted = await self._call(self.primary.delete(key)) or deleted
            except (StorageError, TimeoutError) as exc:
                self._degrade(exc)
        return deleted

    async def expire(self) -> int:
        """Expire entries in both stores; returns the total removed."""
        removed = await self.local.expire()
        if await self._usable():
            try:
                removed += await self._call(self.primary.expire())
            except (StorageError, TimeoutError) as exc:
                self._degrade(exc)
        return removed

    async def flush(self) -> None:
        """Flush `primary` unless degraded."""
        if await self._usable():
            try:
                await self._call(self.primary.flush())
            except (StorageError, TimeoutError) as exc:
                self._degrade(exc)

    async def check(self) -> None:
        """Return while either store can serve; the memory store always can."""
        return None

    async def _usable(self) -> bool:
        return await self._outage.usable(self._resync)

    async def _resync(self) -> dict[str, object]:
        if not self._opened:
            await self._call(self.primary.open())
            self._opened = True
        await self._call(self.primary.check())
        for key, response in self.local.items():
            await self._call(self.primary.put(key, response))
        resynced = len(self.local)
        await self.local.close()
        return {"resynced": resynced}

    def _degrade(self, exc: BaseException) -> None:
        self._outage.fail(exc)

    async def _call(self, awaitable: Awaitable[T]) -> T:
        return await bounded(awaitable, self.primary.operation_timeout)
