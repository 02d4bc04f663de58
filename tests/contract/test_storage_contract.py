"""The storage contracts, run against the built-in backends and Redis.

The Redis classes use the server on 127.0.0.1:6379 with a key prefix of
their own per test, and delete every key under it afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultguard_redis import RedisBreakerStateStore, RedisFallbackStore
from faultguard_redis.client import build_client
from faultguard_redis.settings import RedisSettings

from faultguard_core.clock import FakeClock
from faultguard_core.storage.local_state import LocalBreakerStateStore
from faultguard_core.storage.memory import MemoryStore
from faultguard_core.storage.sqlite import SQLiteStore
from faultguard_core.storage.sqlite_state import SQLiteBreakerStateStore
from faultguard_core.testing.storage_contract import (
    BreakerStateStoreContract,
    FallbackStoreContract,
    StateStoreMaker,
    StoreLimits,
    StoreMaker,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_SETTINGS = RedisSettings(url=REDIS_URL, timeout=2.0)


class TestMemoryStoreContract(FallbackStoreContract):
    @pytest.fixture
    def make_store(self) -> StoreMaker:
        def make(limits: StoreLimits) -> MemoryStore:
            return MemoryStore(
                max_entry_bytes=limits.max_entry_bytes,
                max_entries=limits.max_entries or 10_000,
                max_age=limits.max_age,
                clock=limits.clock,
            )

        return make


class TestSQLiteSyncStoreContract(FallbackStoreContract):
    durability = "sync"

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreMaker:
        count = iter(range(1000))

        def make(limits: StoreLimits) -> SQLiteStore:
            return SQLiteStore(
                tmp_path / f"fallback-{next(count)}.db",
                max_entry_bytes=limits.max_entry_bytes,
                max_entries=limits.max_entries,
                max_age=limits.max_age,
                durability=self.durability,  # type: ignore[arg-type]
                clock=limits.clock,
            )

        return make


class TestSQLiteBatchedStoreContract(TestSQLiteSyncStoreContract):
    durability = "batched"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A hash-tagged key prefix of this test; its keys are deleted afterwards."""
    prefix = "{faultguard-test-" + uuid.uuid4().hex + "}"
    yield prefix
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


class TestRedisStoreContract(FallbackStoreContract):
    @pytest.fixture
    def make_store(self, redis_prefix: str) -> StoreMaker:
        def make(limits: StoreLimits) -> RedisFallbackStore:
            return RedisFallbackStore(
                build_client(REDIS_SETTINGS),
                prefix=redis_prefix + str(id(limits)),
                timeout=2.0,
                max_entry_bytes=limits.max_entry_bytes,
                max_entries=limits.max_entries,
                max_age=limits.max_age,
                clock=limits.clock,
            )

        return make


class TestLocalStateStoreContract(BreakerStateStoreContract):
    @pytest.fixture
    def make_state_store(self) -> StateStoreMaker:
        return LocalBreakerStateStore


class TestSQLiteStateStoreContract(BreakerStateStoreContract):
    shared = True

    @pytest.fixture
    def make_state_store(self, tmp_path: Path) -> StateStoreMaker:
        def make(clock: FakeClock) -> SQLiteBreakerStateStore:
            return SQLiteBreakerStateStore(tmp_path / "state.db", clock=clock)

        return make


class TestRedisStateStoreContract(BreakerStateStoreContract):
    shared = True
    real_time = True

    @pytest.fixture
    def make_state_store(self, redis_prefix: str) -> StateStoreMaker:
        def make(clock: FakeClock) -> RedisBreakerStateStore:
            return RedisBreakerStateStore(
                build_client(REDIS_SETTINGS), prefix=redis_prefix, timeout=2.0
            )

        return make
