"""Unit tests of the bulkhead: slots, the bounded queue and cancellation."""

from __future__ import annotations

import anyio
import pytest

from faultguard_core.bulkhead import Bulkhead

pytestmark = pytest.mark.anyio


async def test_bulkhead_admits_up_to_limit() -> None:
    bulkhead = Bulkhead(2)

    assert await bulkhead.acquire(0) is True
    assert await bulkhead.acquire(0) is True
    assert await bulkhead.acquire(0) is False
    assert bulkhead.active == 2


async def test_bulkhead_release_frees_slot() -> None:
    bulkhead = Bulkhead(1)
    assert await bulkhead.acquire(0) is True

    bulkhead.release()

    assert await bulkhead.acquire(0) is True


async def test_bulkhead_queue_times_out() -> None:
    bulkhead = Bulkhead(1)
    await bulkhead.acquire(0)

    with anyio.fail_after(2):
        admitted = await bulkhead.acquire(0.02)

    assert admitted is False
    assert bulkhead.waiting == 0
    assert bulkhead.active == 1


async def test_bulkhead_queue_hands_over_slot() -> None:
    bulkhead = Bulkhead(1)
    await bulkhead.acquire(0)
    admitted: list[bool] = []

    async def wait_for_slot() -> None:
        admitted.append(await bulkhead.acquire(5))

    async with anyio.create_task_group() as group:
        group.start_soon(wait_for_slot)
        await anyio.wait_all_tasks_blocked()
        assert bulkhead.waiting == 1
        bulkhead.release()

    assert admitted == [True]
    assert bulkhead.active == 1


async def test_bulkhead_queue_is_fifo() -> None:
    bulkhead = Bulkhead(1)
    await bulkhead.acquire(0)
    order: list[int] = []

    async def wait_for_slot(number: int) -> None:
        await bulkhead.acquire(5)
        order.append(number)
        bulkhead.release()

    async with anyio.create_task_group() as group:
        for number in range(3):
            group.start_soon(wait_for_slot, number)
            await anyio.wait_all_tasks_blocked()
        bulkhead.release()

    assert order == [0, 1, 2]
    assert bulkhead.active == 0


async def test_bulkhead_cancelled_waiter_leaves_queue() -> None:
    bulkhead = Bulkhead(1)
    await bulkhead.acquire(0)

    with anyio.move_on_after(0.02):
        await bulkhead.acquire(5)

    assert bulkhead.waiting == 0
    bulkhead.release()
    assert bulkhead.active == 0


async def test_bulkhead_cancel_after_handover_keeps_count() -> None:
    bulkhead = Bulkhead(1)
    await bulkhead.acquire(0)

    async def take_and_give_back() -> None:
        if await bulkhead.acquire(5):
            try:
                await anyio.sleep_forever()
            finally:
                bulkhead.release()

    async with anyio.create_task_group() as group:
        group.start_soon(take_and_give_back)
        await anyio.wait_all_tasks_blocked()
        # The slot goes to the waiter, which is cancelled around its resumption.
        bulkhead.release()
        group.cancel_scope.cancel()

    assert bulkhead.active == 0
    assert bulkhead.waiting == 0


def test_bulkhead_invalid_limit_rejected() -> None:
    with pytest.raises(ValueError, match="limit"):
        Bulkhead(0)
