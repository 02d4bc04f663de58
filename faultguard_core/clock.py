"""Time sources. Breaker and retry logic take a `Clock` so tests never sleep."""

from __future__ import annotations

import time
from typing import Protocol

import anyio


class Clock(Protocol):
    """A monotonic time source with a matching sleep."""

    def monotonic(self) -> float:
        """Return seconds from an arbitrary fixed point; never goes backwards."""
        ...

    def wall(self) -> float:
        """Return the current Unix time in seconds, for timestamps shown to users."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of this clock's time."""
        ...


class SystemClock:
    """The real clock: `time.monotonic`, `time.time` and `anyio.sleep`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class FakeClock:
    """A manual clock for tests: time moves only through `advance` and `sleep`.

    `sleep` advances the clock instead of waiting, and records each request in
    `sleeps`, so a test can assert on the delays a retry loop asked for.
    """

    def __init__(self, start: float = 1000.0, wall_start: float = 1.7e9) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards by {seconds}s")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(seconds, 0.0))
        # Yield once so concurrent tasks interleave as they would on a real sleep.
        await anyio.lowlevel.checkpoint()
