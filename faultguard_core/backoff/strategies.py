"""The built-in backoff strategies: `exponential`, `constant` and `linear`.

Each strategy computes a raw delay from its shape, capped at
`RetrySettings.max_delay`, and then applies the `jitter` setting. The jitter
formulas follow "Exponential Backoff And Jitter" on the AWS Architecture Blog
(https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/):

- `none`: the raw delay.
- `full`: uniform in [0, raw].
- `equal`: raw/2 plus uniform in [0, raw/2].
- `decorrelated`: uniform in [base_delay, min(max_delay, previous * 3)],
  where `previous` is the last delay returned and starts at `base_delay`.

Jitter never returns more than `max_delay`. The blog's decorrelated formula
is `min(max_delay, uniform(base_delay, previous * 3))`, which returns exactly
`max_delay` for most draws once the window passes the cap. This module caps
the window before the draw instead, so delays at the cap stay spread over
[base_delay, max_delay].

Decorrelated jitter derives each delay from the previous one, not from the
strategy's raw delay, so it produces the same schedule under all three
strategies. With `base_delay` 0 every delay is 0, whatever the jitter.
"""

from __future__ import annotations

import math
import random
from abc import abstractmethod
from collections.abc import Callable

from faultguard_core._markers import hookimpl
from faultguard_core.backoff.base import BackoffFactory, BackoffStrategy
from faultguard_core.settings import RetrySettings

_DECORRELATED_GROWTH = 3.0
"""Factor between the previous delay and the top of the next decorrelated window."""


class JitteredBackoff(BackoffStrategy):
    """A strategy with a raw delay per retry and the configured jitter on top.

    Subclasses implement `raw_delay`. One instance serves one call, because
    decorrelated jitter keeps the previous delay between retries.
    """

    def __init__(self, settings: RetrySettings, rng: random.Random) -> None:
        self.base_delay = settings.base_delay
        self.max_delay = settings.max_delay
        self.jitter = settings.jitter
        self._rng = rng
        self._previous = settings.base_delay

    @abstractmethod
    def raw_delay(self, retry: int) -> float:
        """Return the delay before retry `retry` without jitter, <= `max_delay`."""

    def next_delay(self, retry: int) -> float:
        """Return seconds to wait before retry `retry` (1 for the first).

        The result is in [0, max_delay], and in [base_delay, max_delay] under
        decorrelated jitter. Raises `ValueError` if `retry` is below 1.
        """
        if retry < 1:
            raise ValueError(f"invalid retry number {retry}: retry numbers start at 1")

        if self.jitter == "decorrelated":
            return self._next_decorrelated()

        raw = self.raw_delay(retry)
        if self.jitter == "full":
            return self._rng.uniform(0.0, raw)
        if self.jitter == "equal":
            half = raw / 2.0
            return half + self._rng.uniform(0.0, half)
        return raw

    def _next_decorrelated(self) -> float:
        upper = min(self.max_delay, self._previous * _DECORRELATED_GROWTH)
        drawn = self._rng.uniform(self.base_delay, upper)

        # uniform(a, b) computes a + (b - a) * random(), which can round to a
        # value just outside [a, b], so clamp the draw to the window.
        delay = min(upper, max(self.base_delay, drawn))
        self._previous = delay
        return delay


class ExponentialBackoff(JitteredBackoff):
    """Raw delay `base_delay * multiplier ** (retry - 1)`, capped at `max_delay`."""

    def __init__(self, settings: RetrySettings, rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.multiplier = settings.multiplier
        self._max_exponent = _exponent_reaching_cap(
            self.base_delay, self.max_delay, self.multiplier
        )

    def raw_delay(self, retry: int) -> float:
        # Past `_max_exponent` the delay is at the cap anyway, so stopping there
        # keeps `multiplier ** exponent` finite for any retry number.
        exponent = min(retry - 1, self._max_exponent)
        try:
            grown = self.base_delay * self.multiplier**exponent
        except OverflowError:
            return self.max_delay
        return min(self.max_delay, grown)


class ConstantBackoff(JitteredBackoff):
    """Raw delay `base_delay` for every retry."""

    def raw_delay(self, retry: int) -> float:
        return self.base_delay


class LinearBackoff(JitteredBackoff):
    """Raw delay `base_delay * retry`, capped at `max_delay`."""

    def raw_delay(self, retry: int) -> float:
        if self.base_delay <= 0.0:
            return 0.0

        # Limit the factor so a huge retry number cannot overflow the float.
        steps_to_cap = math.ceil(self.max_delay / self.base_delay)
        return min(self.max_delay, self.base_delay * min(retry, steps_to_cap))


def _exponent_reaching_cap(base: float, cap: float, multiplier: float) -> int:
    """Return an exponent at which `base * multiplier ** exponent >= cap`.

    Returns 0 when the delay never grows (base 0 or multiplier 1), because
    every exponent then gives the same delay.
    """
    if base <= 0.0 or multiplier <= 1.0 or cap <= base:
        return 0

    # One extra step absorbs rounding in the logarithms.
    return math.ceil(math.log(cap / base) / math.log(multiplier)) + 1


BUILTIN_STRATEGIES: dict[str, BackoffFactory] = {
    "exponential": ExponentialBackoff,
    "constant": ConstantBackoff,
    "linear": LinearBackoff,
}
"""The strategies this module registers, by their `retry.backoff` name."""


@hookimpl
def faultguard_register_backoff_strategies(
    register: Callable[[str, BackoffFactory], None],
) -> None:
    """Register `exponential`, `constant` and `linear`."""
    for name, factory in BUILTIN_STRATEGIES.items():
        register(name, factory)
