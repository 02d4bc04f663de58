"""Unit tests of the per-service retry budget, on a fake clock."""

from __future__ import annotations

import pytest

from faultguard_core.clock import FakeClock
from faultguard_core.retry_budget import RetryBudget


def make_budget(
    clock: FakeClock,
    ratio: float = 0.2,
    min_per_second: float = 0.0,
    window: float = 10.0,
) -> RetryBudget:
    return RetryBudget(clock, ratio=ratio, min_per_second=min_per_second, window=window)


def spend_all(budget: RetryBudget, limit: int = 10_000) -> int:
    spent = 0
    while spent < limit and budget.try_spend():
        spent += 1
    return spent


def test_budget_ratio_of_calls() -> None:
    budget = make_budget(FakeClock())
    for _ in range(50):
        budget.record_call()

    assert spend_all(budget) == 10


def test_budget_floor_without_calls() -> None:
    budget = make_budget(FakeClock(), min_per_second=0.5, window=10.0)

    assert spend_all(budget) == 5


def test_budget_zero_refuses_every_retry() -> None:
    budget = make_budget(FakeClock(), ratio=0.0, min_per_second=0.0)
    budget.record_call()

    assert budget.try_spend() is False
    assert budget.counts() == (1, 0)


def test_budget_refusal_counts_nothing() -> None:
    budget = make_budget(FakeClock())
    for _ in range(5):
        budget.record_call()

    assert budget.try_spend() is True
    assert budget.try_spend() is False
    assert budget.counts() == (5, 1)


def test_budget_window_expires_old_counts() -> None:
    clock = FakeClock()
    budget = make_budget(clock)
    for _ in range(10):
        budget.record_call()
    assert spend_all(budget) == 2

    clock.advance(10.0)

    assert budget.counts() == (0, 0)
    assert budget.try_spend() is False


def test_budget_window_slides_by_bucket() -> None:
    clock = FakeClock(start=0.0)
    budget = make_budget(clock)
    for _ in range(10):
        budget.record_call()
    clock.advance(5.0)
    for _ in range(10):
        budget.record_call()
    assert spend_all(budget) == 4

    # The first ten calls leave the window; their retries stay counted
    # until the bucket that holds them expires too.
    clock.advance(5.0)

    assert budget.counts() == (10, 4)
    assert budget.try_spend() is False


def test_budget_floor_refills_after_window() -> None:
    clock = FakeClock()
    budget = make_budget(clock, ratio=0.0, min_per_second=1.0, window=2.0)
    assert spend_all(budget) == 2

    clock.advance(2.0)

    assert spend_all(budget) == 2


def test_budget_invalid_window_rejected() -> None:
    with pytest.raises(ValueError, match="window"):
        make_budget(FakeClock(), window=0.0)
