"""The backoff strategy contract."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable

from faultguard_core.settings import RetrySettings


class BackoffStrategy(ABC):
    """Computes the delay before each retry of one call.

    A strategy object is created per call, so it may keep state between
    retries (decorrelated jitter needs the previous delay).
    """

    @abstractmethod
    def next_delay(self, retry: int) -> float:
        """Return seconds to wait before retry number `retry` (1 for the first).

        The result is finite, >= 0 and never above the configured cap.
        """


BackoffFactory = Callable[[RetrySettings, random.Random], BackoffStrategy]
"""Builds a strategy for one call from the retry settings and a random source."""
