"""Unit tests of the built-in backoff strategies, with seeded random sources."""

from __future__ import annotations

import random
import statistics
from typing import Any

import pytest

from faultguard_core.backoff.base import BackoffFactory, BackoffStrategy
from faultguard_core.backoff.strategies import (
    ConstantBackoff,
    ExponentialBackoff,
    LinearBackoff,
    faultguard_register_backoff_strategies,
)
from faultguard_core.settings import RetrySettings

SAMPLES = 5000
BASE = 0.5
CAP = 10.0
MULTIPLIER = 2.0


def retry_settings(**overrides: Any) -> RetrySettings:
    values: dict[str, Any] = {
        "base_delay": BASE,
        "max_delay": CAP,
        "multiplier": MULTIPLIER,
        "jitter": "none",
    }
    values.update(overrides)
    return RetrySettings(**values)


def sample(strategy: BackoffStrategy, retry: int, count: int = SAMPLES) -> list[float]:
    return [strategy.next_delay(retry) for _ in range(count)]


def exponential(jitter: str, seed: int = 7, **overrides: Any) -> ExponentialBackoff:
    settings = retry_settings(jitter=jitter, **overrides)
    return ExponentialBackoff(settings, random.Random(seed))


# Exponential without jitter.


def test_exponential_none_exact_until_cap() -> None:
    strategy = exponential("none")

    delays = [strategy.next_delay(retry) for retry in range(1, 9)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, CAP, CAP, CAP]


def test_exponential_none_matches_formula() -> None:
    strategy = exponential("none", base_delay=0.1, max_delay=60.0, multiplier=1.5)

    for retry in range(1, 40):
        expected = min(60.0, 0.1 * 1.5 ** (retry - 1))
        assert strategy.next_delay(retry) == expected, retry


def test_exponential_multiplier_one_stays_base() -> None:
    strategy = exponential("none", multiplier=1.0)

    assert [strategy.next_delay(retry) for retry in (1, 2, 50, 1000)] == [BASE] * 4


@pytest.mark.parametrize("retry", [1000, 10_000, 10**9])
def test_exponential_cap_at_huge_retry(retry: int) -> None:
    strategy = exponential("none")

    assert strategy.next_delay(retry) == CAP


def test_exponential_huge_multiplier_no_overflow() -> None:
    strategy = exponential("none", multiplier=1e300)

    assert strategy.next_delay(1) == BASE
    assert strategy.next_delay(2) == CAP
    assert strategy.next_delay(1000) == CAP


def test_exponential_multiplier_near_one_grows() -> None:
    strategy = exponential("none", base_delay=1.0, max_delay=3.0, multiplier=1.001)

    assert strategy.next_delay(1000) == 1.001**999
    assert strategy.next_delay(10_000) == 3.0


@pytest.mark.parametrize("jitter", ["none", "full", "equal", "decorrelated"])
def test_exponential_retry_zero_rejected(jitter: str) -> None:
    strategy = exponential(jitter)

    with pytest.raises(ValueError, match="start at 1"):
        strategy.next_delay(0)


# Full jitter.


def test_full_jitter_bounds_and_mean() -> None:
    strategy = exponential("full")
    raw = 4.0  # retry 4: 0.5 * 2**3

    delays = sample(strategy, retry=4)

    assert min(delays) >= 0.0
    assert max(delays) < raw
    assert min(delays) < 0.02 * raw
    assert max(delays) > 0.98 * raw
    assert statistics.fmean(delays) == pytest.approx(raw / 2, rel=0.05)


def test_full_jitter_spreads_at_cap() -> None:
    strategy = exponential("full")

    delays = sample(strategy, retry=1000)

    assert max(delays) <= CAP
    assert min(delays) < 0.02 * CAP
    assert max(delays) > 0.98 * CAP
    assert statistics.fmean(delays) == pytest.approx(CAP / 2, rel=0.05)


# Equal jitter.


def test_equal_jitter_bounds_and_mean() -> None:
    strategy = exponential("equal")
    raw = 4.0

    delays = sample(strategy, retry=4)

    assert min(delays) >= raw / 2
    assert max(delays) <= raw
    assert min(delays) < 0.51 * raw
    assert max(delays) > 0.99 * raw
    assert statistics.fmean(delays) == pytest.approx(0.75 * raw, rel=0.03)


def test_equal_jitter_spreads_at_cap() -> None:
    strategy = exponential("equal")

    delays = sample(strategy, retry=1000)

    assert min(delays) >= CAP / 2
    assert max(delays) <= CAP
    assert min(delays) < 0.51 * CAP
    assert delays.count(CAP) < SAMPLES // 100


# Every jitter at once.


@pytest.mark.parametrize("jitter", ["none", "full", "equal", "decorrelated"])
@pytest.mark.parametrize("retry", [1, 2, 5, 6, 30, 1000])
def test_jitter_never_exceeds_cap(jitter: str, retry: int) -> None:
    strategy = exponential(jitter)

    delays = sample(strategy, retry=retry, count=1000)

    assert min(delays) >= 0.0
    assert max(delays) <= CAP


# Decorrelated jitter.


def test_decorrelated_first_delay_window() -> None:
    for seed in range(200):
        strategy = exponential("decorrelated", seed=seed)

        delay = strategy.next_delay(1)

        assert BASE <= delay <= 3 * BASE, seed


def test_decorrelated_stays_within_base_and_cap() -> None:
    strategy = exponential("decorrelated")

    delays = [strategy.next_delay(retry) for retry in range(1, SAMPLES + 1)]

    assert min(delays) >= BASE
    assert max(delays) <= CAP


def test_decorrelated_window_follows_previous() -> None:
    strategy = exponential("decorrelated", max_delay=1e9)

    previous = BASE
    for retry in range(1, 200):
        delay = strategy.next_delay(retry)
        assert BASE <= delay <= 3 * previous, retry
        previous = delay


def test_decorrelated_spreads_at_cap() -> None:
    strategy = exponential("decorrelated")

    # Skip the climb from base_delay, because afterwards the window is [base, cap].
    delays = [strategy.next_delay(retry) for retry in range(1, SAMPLES + 1)][100:]

    assert len(set(delays)) > len(delays) // 2
    assert delays.count(CAP) < len(delays) // 100
    assert max(delays) > 0.95 * CAP
    assert min(delays) < 2 * BASE


def test_decorrelated_base_zero_stays_zero() -> None:
    strategy = exponential("decorrelated", base_delay=0.0)

    assert [strategy.next_delay(retry) for retry in range(1, 5)] == [0.0] * 4


# Seeds.


@pytest.mark.parametrize("jitter", ["full", "equal", "decorrelated"])
def test_jitter_seeds_give_different_sequences(jitter: str) -> None:
    first = exponential(jitter, seed=1)
    second = exponential(jitter, seed=2)

    first_delays = [first.next_delay(retry) for retry in range(1, 20)]
    second_delays = [second.next_delay(retry) for retry in range(1, 20)]

    assert first_delays != second_delays


@pytest.mark.parametrize("jitter", ["full", "equal", "decorrelated"])
def test_jitter_same_seed_repeats(jitter: str) -> None:
    first = exponential(jitter, seed=3)
    second = exponential(jitter, seed=3)

    first_delays = [first.next_delay(retry) for retry in range(1, 20)]
    second_delays = [second.next_delay(retry) for retry in range(1, 20)]

    assert first_delays == second_delays


# Constant.


def test_constant_none_always_base() -> None:
    strategy = ConstantBackoff(retry_settings(), random.Random(1))

    delays = [strategy.next_delay(retry) for retry in (1, 2, 3, 100, 10**9)]

    assert delays == [BASE] * 5


def test_constant_full_jitter_bounds() -> None:
    strategy = ConstantBackoff(retry_settings(jitter="full"), random.Random(1))

    delays = sample(strategy, retry=50)

    assert min(delays) >= 0.0
    assert max(delays) <= BASE
    assert statistics.fmean(delays) == pytest.approx(BASE / 2, rel=0.05)


def test_constant_equal_jitter_bounds() -> None:
    strategy = ConstantBackoff(retry_settings(jitter="equal"), random.Random(1))

    delays = sample(strategy, retry=50)

    assert min(delays) >= BASE / 2
    assert max(delays) <= BASE


def test_constant_decorrelated_within_bounds() -> None:
    strategy = ConstantBackoff(retry_settings(jitter="decorrelated"), random.Random(1))

    delays = [strategy.next_delay(retry) for retry in range(1, 1000)]

    assert min(delays) >= BASE
    assert max(delays) <= CAP


# Linear.


def test_linear_none_grows_then_caps() -> None:
    strategy = LinearBackoff(retry_settings(), random.Random(1))

    delays = [strategy.next_delay(retry) for retry in range(1, 25)]

    assert delays[:20] == [BASE * retry for retry in range(1, 21)]
    assert delays[20:] == [CAP] * 4


def test_linear_cap_at_huge_retry() -> None:
    strategy = LinearBackoff(retry_settings(), random.Random(1))

    assert strategy.next_delay(10**400) == CAP


def test_linear_full_jitter_bounds() -> None:
    strategy = LinearBackoff(retry_settings(jitter="full"), random.Random(1))
    raw = 3 * BASE

    delays = sample(strategy, retry=3)

    assert min(delays) >= 0.0
    assert max(delays) <= raw
    assert statistics.fmean(delays) == pytest.approx(raw / 2, rel=0.05)


def test_linear_base_zero_stays_zero() -> None:
    strategy = LinearBackoff(retry_settings(base_delay=0.0), random.Random(1))

    assert strategy.next_delay(10) == 0.0


# Registration.


def test_hook_registers_builtin_strategies() -> None:
    registered: dict[str, BackoffFactory] = {}

    def register(name: str, factory: BackoffFactory) -> None:
        assert name not in registered
        registered[name] = factory

    faultguard_register_backoff_strategies(register)

    assert set(registered) == {"exponential", "constant", "linear"}
    for name, factory in registered.items():
        strategy = factory(retry_settings(), random.Random(1))
        assert isinstance(strategy, BackoffStrategy), name
        assert strategy.next_delay(1) == BASE, name
