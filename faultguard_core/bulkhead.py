"""Per-service bulkheads: a limit on the calls one service runs at once.

A bulkhead keeps one slow or failing service from taking every connection and
task of the process. Calls over `request.max_concurrency` wait up to
`request.queue_timeout` for a slot, first come first served, and are rejected
when none frees up in time. A rejection is a local decision: it never counts
as an upstream failure and never reaches the breaker.
"""

from __future__ import annotations

from collections import deque

import anyio

from faultguard_core.errors import CallFailedError


class BulkheadRejectedError(CallFailedError):
    """The service already ran `max_concurrency` calls and no slot freed in time.

    `limit` is the service's `request.max_concurrency`.
    """

    def __init__(
        self, message: str, *, service: str, attempts: int, state: str, limit: int
    ) -> None:
        self.limit = limit
        super().__init__(message, service=service, attempts=attempts, state=state)


class Bulkhead:
    """A FIFO counting semaphore with a bounded wait.

    Unlike `anyio.Semaphore` it can be built outside an event loop, and a
    waiter that times out or is cancelled leaves the queue at once. It is not
    thread-safe: one event loop owns it. The queue wait uses the event loop's
    real clock, not the guard's injected clock.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self._active = 0
        self._waiters: deque[anyio.Event] = deque()

    @property
    def active(self) -> int:
        """Slots in use, including slots handed to waiters not yet resumed."""
        return self._active

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot."""
        return len(self._waiters)

    async def acquire(self, timeout: float) -> bool:
        """Take a slot, waiting at most `timeout` seconds; return False if none.

        With `timeout` <= 0 the call never waits. On cancellation no slot is
        kept: a slot handed over during the cancellation is passed on.
        """
        if self._active < self.limit and not self._waiters:
            self._active += 1
            return True
        if timeout <= 0:
            return False

        granted = anyio.Event()
        self._waiters.append(granted)
        try:
            with anyio.move_on_after(timeout):
                await granted.wait()
        except BaseException:
            self._leave(granted)
            raise

        if granted.is_set():
            return True
        self._waiters.remove(granted)
        return False

    def release(self) -> None:
        """Give a slot back, handing it to the oldest waiter if there is one."""
        if self._waiters:
            # The slot moves to the waiter, so `_active` stays the same.
            self._waiters.popleft().set()
            return
        self._active -= 1

    def _leave(self, granted: anyio.Event) -> None:
        if granted.is_set():
            self.release()
        else:
            self._waiters.remove(granted)
