"""The `faultguard` pytest plugin, loaded through the `pytest11` entry point.

It provides the `fake_clock` fixture and rewrites the asserts of the contract
suites so that their failures show the compared values. Keep its imports light,
because pytest loads it in every project whose environment has faultguard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from faultguard_core.clock import FakeClock

pytest.register_assert_rewrite("faultguard_core.testing.storage_contract")


@pytest.fixture
def fake_clock() -> FakeClock:
    """Return a new `FakeClock`, so time moves only when the test advances it."""
    from faultguard_core.clock import FakeClock

    return FakeClock()
