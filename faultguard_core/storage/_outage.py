"""Outage bookkeeping for stores that live in another process (Redis, SQLite).

`DegradingFallbackStore` and `SharedBreakers` both switch to local state when
their store fails, try it again at most once per `RECONNECT_INTERVAL`, and
log and count each outage once. `StoreOutage` keeps that state for both.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from faultguard_core.clock import Clock
from faultguard_core.errors import StorageError

logger = logging.getLogger("faultguard")

T = TypeVar("T")

RECONNECT_INTERVAL = 1.0
"""Seconds between attempts to reach a failed store."""


class StoreOutage:
    """The outage state of one store: whether it fails, and when to retry it.

    `role` names the log events (`<role>_degraded`, `<role>_still_down`,
    `<role>_recovered`). `on_degraded` is called once at the start of each
    outage.
    """

    def __init__(
        self, role: str, clock: Clock, on_degraded: Callable[[], None]
    ) -> None:
        self.role = role
        self.on_degraded = on_degraded
        self._clock = clock
        self.active = False
        self._retry_at = 0.0

    def fail(self, exc: BaseException) -> None:
        """Start an outage, or postpone the next retry of a running one."""
        self._retry_at = self._clock.monotonic() + RECONNECT_INTERVAL
        if self.active:
            return
        self.active = True
        logger.error(
            f"{self.role}_degraded",
            extra={"error": str(exc) or type(exc).__name__},
        )
        self.on_degraded()

    async def usable(
        self, resync: Callable[[], Awaitable[dict[str, object] | None]]
    ) -> bool:
        """Return True when the store may be called.

        During an outage, `resync` runs at most once per `RECONNECT_INTERVAL`
        to copy the local state back to the store. The outage ends when it
        returns, and the fields it returns are logged with the recovery.
        """
        if not self.active:
            return True
        if self._clock.monotonic() < self._retry_at:
            return False

        # Set first, so calls that arrive during this attempt stay local.
        self._retry_at = self._clock.monotonic() + RECONNECT_INTERVAL
        try:
            fields = await resync()
        except (StorageError, TimeoutError) as exc:
            logger.debug(f"{self.role}_still_down", extra={"error": str(exc)})
            return False

        self.active = False
        logger.warning(f"{self.role}_recovered", extra=fields or {})
        return True


async def bounded(awaitable: Awaitable[T], timeout: float | None) -> T:
    """Await one store call, raising `TimeoutError` after `timeout` seconds."""
    if timeout is None:
        return await awaitable
    with anyio.fail_after(timeout):
        return await awaitable
