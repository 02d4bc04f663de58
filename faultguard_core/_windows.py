"""Sliding windows of recorded calls for the rate-based trip rules.

A window counts calls, failures and slow calls. Excluded calls never enter a
window. Both kinds are cleared on every breaker state change.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """Counts of the calls currently in a window."""

    calls: int
    failures: int
    slow: int


class CountWindow:
    """The last `size` recorded calls."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"count window size must be >= 1, got {size}")
        self.size = size
        self._entries: deque[tuple[bool, bool]] = deque()
        self._failures = 0
        self._slow = 0

    def add(self, now: float, *, failure: bool, slow: bool) -> None:
        if len(self._entries) == self.size:
            old_failure, old_slow = self._entries.popleft()
            self._failures -= old_failure
            self._slow -= old_slow
        self._entries.append((failure, slow))
        self._failures += failure
        self._slow += slow

    def totals(self, now: float) -> WindowTotals:
        return WindowTotals(len(self._entries), self._failures, self._slow)

    def clear(self) -> None:
        self._entries.clear()
        self._failures = 0
        self._slow = 0

    def resize(self, size: int) -> None:
        """Change the size, keeping the newest `size` calls."""
        if size < 1:
            raise ValueError(f"count window size must be >= 1, got {size}")
        self.size = size
        while len(self._entries) > size:
            old_failure, old_slow = self._entries.popleft()
            self._failures -= old_failure
            self._slow -= old_slow


class TimeWindow:
    """The calls recorded in the last `duration` seconds, in `buckets` buckets.

    Time is cut into buckets of `duration / buckets` seconds. The window is
    the current bucket plus the `buckets - 1` before it, so it spans between
    `duration - width` and `duration` seconds. A call counts in the bucket of
    the moment it is recorded, not of the moment it started.
    """

    def __init__(self, duration: float, buckets: int) -> None:
        if not duration > 0:
            raise ValueError(f"time window duration must be > 0, got {duration}")
        if buckets < 1:
            raise ValueError(f"time window buckets must be >= 1, got {buckets}")
        self.duration = duration
        self.buckets = buckets
        self._width = duration / buckets
        self._epochs = [-1] * buckets
        self._calls = [0] * buckets
        self._failures = [0] * buckets
        self._slow = [0] * buckets
        self._totals = [0, 0, 0]
        self._latest = -1

    def _epoch(self, now: float) -> int:
        return math.floor(now / self._width)

    def _expire(self, epoch: int) -> None:
        """Drop buckets that fell out of the window ending at `epoch`."""
        if epoch <= self._latest:
            return
        first = max(self._latest + 1, epoch - self.buckets + 1)
        # Every slot whose epoch is older than the window is cleared; at most
        # `buckets` slots are visited, however far time jumped.
        if epoch - self._latest >= self.buckets:
            self._reset_slots()
        else:
            for stale in range(first, epoch + 1):
                self._clear_slot(stale % self.buckets)
        self._latest = epoch

    def _clear_slot(self, slot: int) -> None:
        self._totals[0] -= self._calls[slot]
        self._totals[1] -= self._failures[slot]
        self._totals[2] -= self._slow[slot]
        self._calls[slot] = 0
        self._failures[slot] = 0
        self._slow[slot] = 0
        self._epochs[slot] = -1

    def _reset_slots(self) -> None:
        for slot in range(self.buckets):
            self._calls[slot] = 0
            self._failures[slot] = 0
            self._slow[slot] = 0
            self._epochs[slot] = -1
        self._totals = [0, 0, 0]

    def add(self, now: float, *, failure: bool, slow: bool) -> None:
        epoch = self._epoch(now)
        self._expire(epoch)
        # A clock reading older than the newest bucket counts in the newest.
        epoch = max(epoch, self._latest)
        slot = epoch % self.buckets
        self._epochs[slot] = epoch
        self._calls[slot] += 1
        self._failures[slot] += failure
        self._slow[slot] += slow
        self._totals[0] += 1
        self._totals[1] += failure
        self._totals[2] += slow

    def totals(self, now: float) -> WindowTotals:
        self._expire(self._epoch(now))
        calls, failures, slow = self._totals
        return WindowTotals(calls, failures, slow)

    def clear(self) -> None:
        self._reset_slots()


Window = CountWindow | TimeWindow
