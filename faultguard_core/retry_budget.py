"""Per-service retry budgets: retries may be at most a fraction of recent calls.

The budget is modelled on the retry budgets of Finagle (`RetryBudget`) and
Envoy (`retry_budget`). Over the last `window` seconds, a service may send at
most `max(ratio * calls, min_per_second * window)` retries. When a burst of
calls fails, retries stop growing with the burst, so a struggling upstream
receives about `1 + ratio` times the call rate instead of `1 + max_retries`
times.

Calls and retries are counted in ten buckets that each cover a tenth of the
window, so the window slides in steps of `window / 10`. Time comes from the
injected clock. The class is not thread-safe: one event loop owns it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from faultguard_core.clock import Clock

BUCKETS_PER_WINDOW = 10


@dataclass(slots=True)
class _Bucket:
    index: int
    calls: int = 0
    retries: int = 0


class RetryBudget:
    """Counts calls and retries of one service over a sliding window.

    Call `record_call()` once per call that is sent upstream, and
    `try_spend()` before each retry: it returns False, and counts nothing,
    when the retry would exceed the budget.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        ratio: float,
        min_per_second: float,
        window: float,
    ) -> None:
        if window <= 0:
            raise ValueError(f"window must be above 0 seconds, got {window}")
        if ratio < 0 or min_per_second < 0:
            raise ValueError(
                f"ratio ({ratio}) and min_per_second ({min_per_second}) must be >= 0"
            )
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.window = window
        self._clock = clock
        self._bucket_seconds = window / BUCKETS_PER_WINDOW
        self._buckets: deque[_Bucket] = deque()
        self._calls = 0
        self._retries = 0

    def record_call(self) -> None:
        """Count one call; each call adds `ratio` retries to the budget."""
        self._current().calls += 1
        self._calls += 1

    def try_spend(self) -> bool:
        """Count one retry and return True if the budget allows it, else False."""
        bucket = self._current()
        if self._retries + 1 > self.allowed():
            return False

        bucket.retries += 1
        self._retries += 1
        return True

    def allowed(self) -> float:
        """Return how many retries the current window allows in total."""
        floor = self.min_per_second * self.window
        return max(self.ratio * self._calls, floor)

    def counts(self) -> tuple[int, int]:
        """Return (calls, retries) counted in the current window."""
        self._current()
        return self._calls, self._retries

    def _current(self) -> _Bucket:
        index = math.floor(self._clock.monotonic() / self._bucket_seconds)
        oldest_kept = index - BUCKETS_PER_WINDOW + 1
        while self._buckets and self._buckets[0].index < oldest_kept:
            expired = self._buckets.popleft()
            self._calls -= expired.calls
            self._retries -= expired.retries

        if not self._buckets or self._buckets[-1].index != index:
            self._buckets.append(_Bucket(index))
        return self._buckets[-1]
