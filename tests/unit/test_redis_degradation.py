"""Degradation of remote stores: local stand-ins, counting, bounded waits, resync."""

from __future__ import annotations

import socket
import time
from typing import ClassVar

import anyio
import pytest
from faultguard_redis import RedisBreakerStateStore, RedisFallbackStore
from faultguard_redis.client import build_client
from faultguard_redis.settings import RedisSettings, redis_settings

from faultguard_core.breaker import BreakerState, CircuitBreaker, Outcome
from faultguard_core.clock import FakeClock
from faultguard_core.errors import CircuitOpenError, ConfigError, StorageError
from faultguard_core.settings import Settings
from faultguard_core.storage.base import (
    BreakerPolicy,
    EntryKey,
    FallbackStore,
    StoredResponse,
)
from faultguard_core.storage.degrading import RECONNECT_INTERVAL, DegradingFallbackStore
from faultguard_core.storage.local_state import LocalBreakerStateStore
from faultguard_core.storage.memory import MemoryStore
from faultguard_core.storage.shared import SharedBreakers, SharedPermit

KEY = EntryKey(key="orders", method="GET", url="https://api.example.test/orders")
POLICY = BreakerPolicy(
    max_failures=2, open_duration=30.0, half_open_max_calls=1, probe_timeout=5.0
)


def _response(fetched_at: float = 100.0) -> StoredResponse:
    return StoredResponse(200, (), b"payload", fetched_at, fetched_at + 1.0)


class FlakyStore(MemoryStore):
    """A memory store that acts remote and fails while `down` is True."""

    remote: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def _fail(self) -> None:
        if self.down:
            raise StorageError("flaky store is down")

    async def get(self, key: EntryKey) -> StoredResponse | None:
        self._fail()
        return await super().get(key)

    async def put(self, key: EntryKey, response: StoredResponse) -> bool:
        self._fail()
        return await super().put(key, response)

    async def check(self) -> None:
        self._fail()


class FlakyStateStore(LocalBreakerStateStore):
    """A local breaker state store that fails while `down` is True."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.down = False

    async def acquire(self, name: str, policy: BreakerPolicy):  # type: ignore[no-untyped-def]
        if self.down:
            raise StorageError("flaky state store is down")
        return await super().acquire(name, policy)

    async def check(self) -> None:
        if self.down:
            raise StorageError("flaky state store is down")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.anyio
async def test_degrading_store_serves_from_memory() -> None:
    clock = FakeClock()
    primary = FlakyStore()
    degradations: list[str] = []
    store = DegradingFallbackStore(
        primary,
        MemoryStore(),
        clock=clock,
        on_degraded=lambda: degradations.append("x"),
    )
    await store.open()
    primary.down = True

    written = await store.put(KEY, _response())
    served = await store.get(KEY)
    await store.put(KEY, _response(fetched_at=200.0))

    assert written is True
    assert served == _response()
    assert store.degraded is True
    assert degradations == ["x"]


@pytest.mark.anyio
async def test_degrading_store_resyncs_on_recovery() -> None:
    clock = FakeClock()
    primary = FlakyStore()
    store = DegradingFallbackStore(primary, MemoryStore(), clock=clock)
    await store.open()
    primary.down = True
    await store.put(KEY, _response(fetched_at=300.0))

    primary.down = False
    still_local = await store.get(KEY)
    clock.advance(RECONNECT_INTERVAL)
    recovered = await store.get(KEY)

    assert still_local == _response(fetched_at=300.0)
    assert recovered == _response(fetched_at=300.0)
    assert store.degraded is False
    assert await primary.get(KEY) == _response(fetched_at=300.0)
    assert len(store.local) == 0


@pytest.mark.anyio
async def test_shared_breakers_degrade_to_local() -> None:
    clock = FakeClock()
    state_store = FlakyStateStore(clock)
    degradations: list[str] = []
    shared = SharedBreakers(
        state_store,
        policy_of=lambda name: POLICY,
        clock=clock,
        on_change=lambda change: None,
        on_degraded=lambda: degradations.append("x"),
    )
    breaker = CircuitBreaker("payments", max_failures=2, clock=clock)
    state_store.down = True

    permit = await shared.admit(breaker)
    await shared.record(breaker, permit, Outcome.FAILURE)
    await shared.record(breaker, await shared.admit(breaker), Outcome.FAILURE)

    assert not isinstance(permit, SharedPermit)
    assert breaker.state is BreakerState.OPEN
    assert shared.degraded is True
    assert degradations == ["x"]


@pytest.mark.anyio
async def test_shared_breakers_publish_local_open() -> None:
    clock = FakeClock()
    state_store = FlakyStateStore(clock)
    shared = SharedBreakers(
        state_store,
        policy_of=lambda name: POLICY,
        clock=clock,
        on_change=lambda change: None,
        on_degraded=lambda: None,
    )
    breaker = CircuitBreaker("payments", max_failures=1, clock=clock)
    state_store.down = True
    await shared.record(breaker, await shared.admit(breaker), Outcome.FAILURE)

    state_store.down = False
    clock.advance(RECONNECT_INTERVAL)
    with pytest.raises(CircuitOpenError) as caught:
        await shared.admit(breaker)

    assert shared.degraded is False
    assert caught.value.state == "open"
    assert (await state_store.read("payments", POLICY)).state.value == "open"


@pytest.mark.anyio
async def test_shared_breakers_time_out_slow_store() -> None:
    clock = FakeClock()

    class SlowStore(LocalBreakerStateStore):
        async def acquire(self, name: str, policy: BreakerPolicy):  # type: ignore[no-untyped-def]
            await anyio.sleep(5)
            return await super().acquire(name, policy)

    shared = SharedBreakers(
        SlowStore(clock),
        policy_of=lambda name: POLICY,
        clock=clock,
        on_change=lambda change: None,
        on_degraded=lambda: None,
        timeout=0.05,
    )
    breaker = CircuitBreaker("payments", clock=clock)

    started = time.monotonic()
    permit = await shared.admit(breaker)
    elapsed = time.monotonic() - started

    assert not isinstance(permit, SharedPermit)
    assert elapsed < 1.0
    assert shared.degraded is True


@pytest.mark.anyio
async def test_redis_unreachable_fails_within_timeout() -> None:
    settings = RedisSettings(url=f"redis://127.0.0.1:{_closed_port()}/0", timeout=0.2)
    fallback: FallbackStore = RedisFallbackStore(
        build_client(settings), prefix="{t}", timeout=0.2, max_entry_bytes=1024
    )
    state = RedisBreakerStateStore(build_client(settings), prefix="{t}", timeout=0.2)

    started = time.monotonic()
    with pytest.raises(StorageError):
        await fallback.get(KEY)
    with pytest.raises(StorageError):
        await state.acquire("payments", POLICY)
    elapsed = time.monotonic() - started
    await fallback.close()
    await state.close()

    assert elapsed < 2.0


@pytest.mark.anyio
async def test_redis_store_degrades_in_wrapper() -> None:
    settings = RedisSettings(url=f"redis://127.0.0.1:{_closed_port()}/0", timeout=0.2)
    primary = RedisFallbackStore(
        build_client(settings), prefix="{t}", timeout=0.2, max_entry_bytes=1024
    )
    store = DegradingFallbackStore(primary, MemoryStore())
    await store.open()

    written = await store.put(KEY, _response())
    served = await store.get(KEY)
    await store.close()

    assert written is True
    assert served == _response()
    assert store.degraded is True


def test_redis_settings_read_from_storage() -> None:
    settings = Settings(
        storage={"redis": {"url": "redis://127.0.0.1:6390/2", "key_prefix": "blue"}}
    )

    parsed = redis_settings(settings)

    assert parsed.url == "redis://127.0.0.1:6390/2"
    assert parsed.hash_tagged_prefix == "{blue}"


def test_redis_prefix_keeps_own_hash_tag() -> None:
    assert RedisSettings(key_prefix="app:{blue}").hash_tagged_prefix == "app:{blue}"


def test_redis_settings_reject_unknown_key() -> None:
    settings = Settings(storage={"redis": {"urll": "redis://x"}})

    with pytest.raises(ConfigError, match=r"storage\.redis\.urll"):
        redis_settings(settings)
