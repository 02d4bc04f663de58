"""The behaviour every storage backend must have, as pytest suites.

Fallback store: subclass `FallbackStoreContract` in a test module (the
subclass name starts with `Test`) and give it a `make_store` fixture that
returns a function building an unopened store from `StoreLimits`::

    class TestMyStore(FallbackStoreContract):
        @pytest.fixture
        def make_store(self, tmp_path):
            def make(limits: StoreLimits) -> MyStore:
                return MyStore(
                    tmp_path / f"store-{id(limits)}",
                    max_entry_bytes=limits.max_entry_bytes,
                    max_entries=limits.max_entries,
                    max_age=limits.max_age,
                    clock=limits.clock,
                )
            return make

The suite opens and closes every store it builds. `limits.clock` is a
`FakeClock` whose wall time is the store's idea of now for `max_age`.

Breaker state store: subclass `BreakerStateStoreContract` and give it a
`make_state_store` fixture that returns a function building an unopened
store from a `FakeClock`. A store that takes time from elsewhere (Redis
`TIME`) sets `real_time = True`, and the suite then sleeps instead of
advancing the clock, with open periods of a fraction of a second. A store
whose instances share state (two processes on one database) sets
`shared = True`.

The tests are async and use anyio's pytest plugin, so the project needs an
`anyio_backend` fixture (anyio's plugin provides one that returns "asyncio").
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import ClassVar

import anyio
import pytest

from faultguard_core.clock import FakeClock
from faultguard_core.storage.base import (
    BreakerPolicy,
    BreakerStateStore,
    EntryKey,
    FallbackStore,
    SharedBreakerState,
    SharedOutcome,
    StoredResponse,
)

CONTRACT_WALL_START = 1_700_000_000.0
"""The wall time of the contract's fake clocks, so that entries the tests
build with `fetched_at` near it are fresh."""


@dataclass(frozen=True)
class StoreLimits:
    """The limits that a contract test passes to `make_store`.

    None means no limit. `clock` supplies the wall time for `max_age`.
    """

    max_entry_bytes: int = 1024
    max_entries: int | None = None
    max_age: float | None = None
    clock: FakeClock = field(
        default_factory=lambda: FakeClock(wall_start=CONTRACT_WALL_START)
    )


StoreMaker = Callable[[StoreLimits], FallbackStore]
OpenStore = Callable[[StoreLimits], Awaitable[FallbackStore]]
StateStoreMaker = Callable[[FakeClock], BreakerStateStore]

_BASE_KEY = EntryKey(
    key="orders",
    method="GET",
    url="https://api.example.test/orders?page=1",
    credentials="3f7a9c",
)


def _response(
    fetched_at: float = 1_700_000_000.25,
    body: bytes = b'{"ok": true}',
    status_code: int = 200,
) -> StoredResponse:
    return StoredResponse(
        status_code=status_code,
        headers=(("content-type", "application/json"), ("x-request-id", "r-1")),
        body=body,
        fetched_at=fetched_at,
        stored_at=fetched_at + 0.5,
    )


class FallbackStoreContract:
    """Tests that a `FallbackStore` backend must pass.

    `max_entry_bytes` is the body size limit of the default limits; a
    subclass sets it to None for a backend without a limit, which skips the
    size tests. `supports_max_entries` and `supports_max_age` set to False
    skip the tests of those limits.
    """

    max_entry_bytes: ClassVar[int | None] = 1024
    supports_max_entries: ClassVar[bool] = True
    supports_max_age: ClassVar[bool] = True

    @pytest.fixture
    async def store(self, make_store: StoreMaker) -> AsyncIterator[FallbackStore]:
        """An opened store with the default limits, closed after the test."""
        limits = StoreLimits(max_entry_bytes=self.max_entry_bytes or 2**31)
        store = make_store(limits)
        await store.open()
        yield store
        await store.close()

    @pytest.fixture
    async def open_store(self, make_store: StoreMaker) -> AsyncIterator[OpenStore]:
        """A function that builds and opens a store; each is closed after the test."""
        opened: list[FallbackStore] = []

        async def build(limits: StoreLimits) -> FallbackStore:
            store = make_store(limits)
            await store.open()
            opened.append(store)
            return store

        yield build
        for store in opened:
            await store.close()

    @pytest.mark.anyio
    async def test_get_missing_key_returns_none(self, store: FallbackStore) -> None:
        assert await store.get(_BASE_KEY) is None

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        "body",
        [b'{"ok": true}', b"\xff\xfe\x00\x80 not utf-8", b""],
        ids=["json", "non-utf8", "empty"],
    )
    async def test_put_get_round_trip(self, store: FallbackStore, body: bytes) -> None:
        response = StoredResponse(
            status_code=203,
            headers=(
                ("content-type", "application/json"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("x-note", "café"),
            ),
            body=body,
            fetched_at=1_700_000_000.1234567,
            stored_at=1_700_000_001.7654321,
        )

        written = await store.put(_BASE_KEY, response)
        stored = await store.get(_BASE_KEY)

        assert written is True
        assert stored is not None
        assert stored.status_code == response.status_code
        assert stored.headers == response.headers
        assert stored.body == response.body
        assert type(stored.body) is bytes
        assert stored.fetched_at == response.fetched_at
        assert stored.stored_at == response.stored_at

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("key", "invoices"),
            ("method", "HEAD"),
            ("url", "https://api.example.test/orders?page=2"),
            ("credentials", ""),
        ],
    )
    async def test_entry_served_only_same_identity(
        self, store: FallbackStore, field: str, value: str
    ) -> None:
        other_key = replace(_BASE_KEY, **{field: value})

        await store.put(_BASE_KEY, _response())

        assert await store.get(other_key) is None
        assert await store.get(_BASE_KEY) == _response()

    @pytest.mark.anyio
    async def test_newer_put_replaces_entry(self, store: FallbackStore) -> None:
        older = _response(fetched_at=100.0, body=b"older")
        newer = _response(fetched_at=200.0, body=b"newer")

        await store.put(_BASE_KEY, older)
        written = await store.put(_BASE_KEY, newer)

        assert written is True
        assert await store.get(_BASE_KEY) == newer

    @pytest.mark.anyio
    async def test_older_put_keeps_newer_entry(self, store: FallbackStore) -> None:
        newer = _response(fetched_at=200.0, body=b"newer")
        older = _response(fetched_at=100.0, body=b"older")

        await store.put(_BASE_KEY, newer)
        written = await store.put(_BASE_KEY, older)

        assert written is False
        assert await store.get(_BASE_KEY) == newer

    @pytest.mark.anyio
    async def test_equal_fetched_at_overwrites(self, store: FallbackStore) -> None:
        first = _response(fetched_at=100.0, body=b"first")
        second = _response(fetched_at=100.0, body=b"second", status_code=201)

        await store.put(_BASE_KEY, first)
        written = await store.put(_BASE_KEY, second)

        assert written is True
        assert await store.get(_BASE_KEY) == second

    @pytest.mark.anyio
    async def test_delete_returns_true_then_false(self, store: FallbackStore) -> None:
        await store.put(_BASE_KEY, _response())

        assert await store.delete(_BASE_KEY) is True
        assert await store.get(_BASE_KEY) is None
        assert await store.delete(_BASE_KEY) is False

    @pytest.mark.anyio
    async def test_delete_missing_key_keeps_others(self, store: FallbackStore) -> None:
        other_key = replace(_BASE_KEY, key="invoices")
        await store.put(other_key, _response())

        assert await store.delete(_BASE_KEY) is False
        assert await store.get(other_key) == _response()

    @pytest.mark.anyio
    async def test_put_after_delete_stores_older(self, store: FallbackStore) -> None:
        older = _response(fetched_at=100.0, body=b"older")
        await store.put(_BASE_KEY, _response(fetched_at=200.0))
        await store.delete(_BASE_KEY)

        written = await store.put(_BASE_KEY, older)

        assert written is True
        assert await store.get(_BASE_KEY) == older

    @pytest.mark.anyio
    async def test_body_at_limit_is_stored(self, store: FallbackStore) -> None:
        if self.max_entry_bytes is None:
            pytest.skip("this backend has no entry size limit")
        response = _response(body=b"x" * self.max_entry_bytes)

        written = await store.put(_BASE_KEY, response)

        assert written is True
        assert await store.get(_BASE_KEY) == response

    @pytest.mark.anyio
    async def test_oversize_put_keeps_old_entry(self, store: FallbackStore) -> None:
        if self.max_entry_bytes is None:
            pytest.skip("this backend has no entry size limit")
        old = _response(fetched_at=100.0, body=b"small")
        oversize = _response(fetched_at=200.0, body=b"x" * (self.max_entry_bytes + 1))
        await store.put(_BASE_KEY, old)

        written = await store.put(_BASE_KEY, oversize)

        assert written is False
        assert await store.get(_BASE_KEY) == old

    @pytest.mark.anyio
    async def test_oversize_put_new_key_stores_nothing(
        self, store: FallbackStore
    ) -> None:
        if self.max_entry_bytes is None:
            pytest.skip("this backend has no entry size limit")
        oversize = _response(body=b"x" * (self.max_entry_bytes + 1))

        written = await store.put(_BASE_KEY, oversize)

        assert written is False
        assert await store.get(_BASE_KEY) is None

    @pytest.mark.anyio
    async def test_concurrent_puts_keep_newest(self, store: FallbackStore) -> None:
        # 10 keys x 10 puts with fetched_at 1..10, plus 100 gets, started in a
        # shuffled order. Every get must see a whole entry, the put with the
        # newest fetched_at of each key must report a write, and that entry
        # must be the one left.
        keys = [replace(_BASE_KEY, key=f"service-{index}") for index in range(10)]
        generations = range(1, 11)
        jobs: list[tuple[str, EntryKey, int]] = [
            ("put", key, generation) for key in keys for generation in generations
        ]
        jobs += [("get", key, 0) for key in keys for _ in generations]
        random.Random(20240501).shuffle(jobs)
        newest_written: dict[EntryKey, bool] = {}
        torn_reads: list[StoredResponse] = []

        def versioned(key: EntryKey, generation: int) -> StoredResponse:
            body = f"{key.key}:{generation}".encode()
            return _response(fetched_at=float(generation), body=body)

        async def run(kind: str, key: EntryKey, generation: int) -> None:
            if kind == "put":
                written = await store.put(key, versioned(key, generation))
                if generation == max(generations):
                    newest_written[key] = written
                return
            stored = await store.get(key)
            if stored is None:
                return
            if stored != versioned(key, int(stored.fetched_at)):
                torn_reads.append(stored)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for kind, key, generation in jobs:
                    group.start_soon(run, kind, key, generation)

        assert len(jobs) == 200
        assert torn_reads == []
        assert newest_written == dict.fromkeys(keys, True)
        for key in keys:
            assert await store.get(key) == versioned(key, max(generations))

    @pytest.mark.anyio
    async def test_close_is_idempotent(self, store: FallbackStore) -> None:
        await store.close()
        await store.close()

    @pytest.mark.anyio
    async def test_check_passes_when_open(self, store: FallbackStore) -> None:
        await store.check()

    @pytest.mark.anyio
    async def test_flush_keeps_entries_readable(self, store: FallbackStore) -> None:
        await store.put(_BASE_KEY, _response())

        await store.flush()

        assert await store.get(_BASE_KEY) == _response()

    @pytest.mark.anyio
    async def test_max_entries_evicts_least_recent(self, open_store: OpenStore) -> None:
        if not self.supports_max_entries:
            pytest.skip("this backend has no entry count limit")
        store = await open_store(StoreLimits(max_entries=2))
        first, second, third = (replace(_BASE_KEY, key=name) for name in "abc")
        await store.put(first, _response())
        await store.put(second, _response())

        # Reading `first` makes `second` the least recently used.
        assert await store.get(first) == _response()
        await store.put(third, _response())
        await store.flush()

        assert await store.get(second) is None
        assert await store.get(first) == _response()
        assert await store.get(third) == _response()

    @pytest.mark.anyio
    async def test_update_within_max_entries_keeps_all(
        self, open_store: OpenStore
    ) -> None:
        if not self.supports_max_entries:
            pytest.skip("this backend has no entry count limit")
        store = await open_store(StoreLimits(max_entries=2))
        first, second = (replace(_BASE_KEY, key=name) for name in "ab")
        await store.put(first, _response())
        await store.put(second, _response())

        await store.put(second, _response(fetched_at=1_700_000_001.0))
        await store.flush()

        assert await store.get(first) == _response()
        assert await store.get(second) == _response(fetched_at=1_700_000_001.0)

    @pytest.mark.anyio
    async def test_entry_past_max_age_not_served(self, open_store: OpenStore) -> None:
        if not self.supports_max_age:
            pytest.skip("this backend has no maximum age")
        limits = StoreLimits(max_age=60.0)
        store = await open_store(limits)
        fresh = _response(fetched_at=limits.clock.wall() - 1.0)
        await store.put(_BASE_KEY, fresh)

        limits.clock.advance(30.0)
        served_young = await store.get(_BASE_KEY)
        limits.clock.advance(31.0)
        served_old = await store.get(_BASE_KEY)
        removed = await store.expire()

        assert served_young == fresh
        assert served_old is None
        assert removed >= 0
        assert await store.get(_BASE_KEY) is None

    @pytest.mark.anyio
    async def test_expire_purges_old_entries(self, open_store: OpenStore) -> None:
        if not self.supports_max_age:
            pytest.skip("this backend has no maximum age")
        limits = StoreLimits(max_age=60.0)
        store = await open_store(limits)
        old_key = replace(_BASE_KEY, key="old")
        young_key = replace(_BASE_KEY, key="young")
        now = limits.clock.wall()
        await store.put(old_key, _response(fetched_at=now - 50.0))
        await store.put(young_key, _response(fetched_at=now - 1.0))
        await store.flush()

        limits.clock.advance(20.0)
        await store.expire()

        assert await store.get(old_key) is None
        assert await store.get(young_key) == _response(fetched_at=now - 1.0)

    @pytest.mark.anyio
    async def test_put_of_expired_entry_rejected(self, open_store: OpenStore) -> None:
        if not self.supports_max_age:
            pytest.skip("this backend has no maximum age")
        limits = StoreLimits(max_age=60.0)
        store = await open_store(limits)
        stale = _response(fetched_at=limits.clock.wall() - 120.0)

        written = await store.put(_BASE_KEY, stale)

        assert written is False
        assert await store.get(_BASE_KEY) is None

    @pytest.mark.anyio
    async def test_fresh_put_replaces_expired_newer(
        self, open_store: OpenStore
    ) -> None:
        # An expired entry no longer counts as newer than a fresh response.
        if not self.supports_max_age:
            pytest.skip("this backend has no maximum age")
        limits = StoreLimits(max_age=60.0)
        store = await open_store(limits)
        now = limits.clock.wall()
        await store.put(_BASE_KEY, _response(fetched_at=now + 5.0))
        limits.clock.advance(100.0)
        fresh = _response(fetched_at=now + 1.0)
        fresh = replace(fresh, stored_at=limits.clock.wall())

        written = await store.put(_BASE_KEY, fresh)

        assert written is True
        assert await store.get(_BASE_KEY) == fresh


_POLICY = BreakerPolicy(
    max_failures=3, open_duration=0.3, half_open_max_calls=2, probe_timeout=0.6
)
_BREAKER = "payments"


class BreakerStateStoreContract:
    """Tests that a `BreakerStateStore` backend must pass.

    Open periods are 0.3 s and probe slots are reclaimed after 0.6 s, so a
    `real_time` store costs about two seconds of sleeping for the suite.
    """

    real_time: ClassVar[bool] = False
    shared: ClassVar[bool] = False

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(wall_start=CONTRACT_WALL_START)

    @pytest.fixture
    async def state_store(
        self, make_state_store: StateStoreMaker, clock: FakeClock
    ) -> AsyncIterator[BreakerStateStore]:
        store = make_state_store(clock)
        await store.open()
        yield store
        await store.close()

    async def advance(self, clock: FakeClock, seconds: float) -> None:
        """Let `seconds` pass for the store: sleep or advance the fake clock."""
        if self.real_time:
            await anyio.sleep(seconds)
        else:
            clock.advance(seconds)

    async def _open(self, store: BreakerStateStore) -> None:
        for _ in range(_POLICY.max_failures):
            admission = await store.acquire(_BREAKER, _POLICY)
            await store.record(
                _BREAKER, _POLICY, admission.generation, False, SharedOutcome.FAILURE
            )

    @pytest.mark.anyio
    async def test_new_breaker_admits_closed(
        self, state_store: BreakerStateStore
    ) -> None:
        admission = await state_store.acquire(_BREAKER, _POLICY)

        assert admission.admitted is True
        assert admission.probe is False
        assert admission.state is SharedBreakerState.CLOSED

    @pytest.mark.anyio
    async def test_failures_open_breaker(self, state_store: BreakerStateStore) -> None:
        await self._open(state_store)

        rejected = await state_store.acquire(_BREAKER, _POLICY)
        record = await state_store.read(_BREAKER, _POLICY)

        assert rejected.admitted is False
        assert rejected.state is SharedBreakerState.OPEN
        assert 0.0 < rejected.retry_after <= _POLICY.open_duration
        assert record.state is SharedBreakerState.OPEN

    @pytest.mark.anyio
    async def test_opening_record_reports_transition(
        self, state_store: BreakerStateStore
    ) -> None:
        results = []
        for _ in range(_POLICY.max_failures):
            admission = await state_store.acquire(_BREAKER, _POLICY)
            results.append(
                await state_store.record(
                    _BREAKER,
                    _POLICY,
                    admission.generation,
                    False,
                    SharedOutcome.FAILURE,
                )
            )

        assert [result.previous for result in results[:-1]] == [None, None]
        assert results[-1].previous is SharedBreakerState.CLOSED
        assert results[-1].state is SharedBreakerState.OPEN

    @pytest.mark.anyio
    async def test_success_resets_failure_count(
        self, state_store: BreakerStateStore
    ) -> None:
        outcomes = [SharedOutcome.FAILURE] * (_POLICY.max_failures - 1)
        outcomes += [SharedOutcome.SUCCESS, SharedOutcome.FAILURE]
        for outcome in outcomes:
            admission = await state_store.acquire(_BREAKER, _POLICY)
            await state_store.record(
                _BREAKER, _POLICY, admission.generation, False, outcome
            )

        record = await state_store.read(_BREAKER, _POLICY)

        assert record.state is SharedBreakerState.CLOSED
        assert record.failures == 1

    @pytest.mark.anyio
    async def test_probe_budget_under_concurrency(
        self, state_store: BreakerStateStore, clock: FakeClock
    ) -> None:
        await self._open(state_store)
        await self.advance(clock, _POLICY.open_duration + 0.05)
        admissions = []

        async def acquire() -> None:
            admissions.append(await state_store.acquire(_BREAKER, _POLICY))

        async with anyio.create_task_group() as group:
            for _ in range(50):
                group.start_soon(acquire)

        probes = [admission for admission in admissions if admission.admitted]
        assert len(admissions) == 50
        assert len(probes) == _POLICY.half_open_max_calls
        assert all(probe.probe for probe in probes)
        assert {a.state for a in admissions} == {SharedBreakerState.HALF_OPEN}

    @pytest.mark.anyio
    async def test_probe_successes_close_breaker(
        self, state_store: BreakerStateStore, clock: FakeClock
    ) -> None:
        await self._open(state_store)
        await self.advance(clock, _POLICY.open_duration + 0.05)
        probes = [
            await state_store.acquire(_BREAKER, _POLICY)
            for _ in range(_POLICY.half_open_max_calls)
        ]

        results = [
            await state_store.record(
                _BREAKER, _POLICY, probe.generation, True, SharedOutcome.SUCCESS
            )
            for probe in probes
        ]

        assert probes[0].previous is SharedBreakerState.OPEN
        assert results[-1].state is SharedBreakerState.CLOSED
        assert results[-1].previous is SharedBreakerState.HALF_OPEN
        assert (await state_store.acquire(_BREAKER, _POLICY)).admitted is True

    @pytest.mark.anyio
    async def test_probe_failure_reopens_breaker(
        self, state_store: BreakerStateStore, clock: FakeClock
    ) -> None:
        await self._open(state_store)
        await self.advance(clock, _POLICY.open_duration + 0.05)
        probe = await state_store.acquire(_BREAKER, _POLICY)

        result = await state_store.record(
            _BREAKER, _POLICY, probe.generation, True, SharedOutcome.FAILURE
        )
        rejected = await state_store.acquire(_BREAKER, _POLICY)

        assert result.state is SharedBreakerState.OPEN
        assert rejected.admitted is False
        assert rejected.retry_after > _POLICY.open_duration / 2

    @pytest.mark.anyio
    async def test_excluded_probe_frees_slot(
        self, state_store: BreakerStateStore, clock: FakeClock
    ) -> None:
        await self._open(state_store)
        await self.advance(clock, _POLICY.open_duration + 0.05)
        probes = [
            await state_store.acquire(_BREAKER, _POLICY)
            for _ in range(_POLICY.half_open_max_calls)
        ]
        full = await state_store.acquire(_BREAKER, _POLICY)

        await state_store.record(
            _BREAKER, _POLICY, probes[0].generation, True, SharedOutcome.EXCLUDED
        )
        freed = await state_store.acquire(_BREAKER, _POLICY)

        assert full.admitted is False
        assert full.retry_after == 0.0
        assert freed.admitted is True
        assert freed.probe is True

    @pytest.mark.anyio
    async def test_stale_generation_is_ignored(
        self, state_store: BreakerStateStore, clock: FakeClock
    ) -> None:
        stale = await state_store.acquire(_BREAKER, _POLICY)
        await self._open(state_store)
        await self.advance(clock, _POLICY.open_duration + 0.05)
        await state_store.acquire(_BREAKER, _POLICY)

        result = await state_store.record(
            _BREAKER, _POLICY, stale.generation, False, SharedOutcome.FAILURE
        )
        record = await state_store.read(_BREAKER, _POLICY)

        assert result.previous is None
        assert record.state is SharedBreakerState.HALF_OPEN
        assert record.probes_in_flight == 1

    @pytest.mark.anyio
    async def test_lost_probe_slots_reclaimed(
        self, state_store: BreakerStateStore, clock: FakeClock
    ) -> None:
        await self._open(state_store)
        await self.advance(clock, _POLICY.open_duration + 0.05)
        lost = [
            await state_store.acquire(_BREAKER, _POLICY)
            for _ in range(_POLICY.half_open_max_calls)
        ]

        await self.advance(clock, _POLICY.probe_timeout + 0.05)
        reclaimed = await state_store.acquire(_BREAKER, _POLICY)
        late = await state_store.record(
            _BREAKER, _POLICY, lost[0].generation, True, SharedOutcome.SUCCESS
        )
        record = await state_store.read(_BREAKER, _POLICY)

        assert reclaimed.admitted is True
        assert reclaimed.generation > lost[0].generation
        assert late.previous is None
        assert record.probes_in_flight == 1
        assert record.probe_successes == 0

    @pytest.mark.anyio
    async def test_trip_opens_and_never_shortens(
        self, state_store: BreakerStateStore
    ) -> None:
        first = await state_store.trip(_BREAKER, _POLICY, 5.0)
        second = await state_store.trip(_BREAKER, _POLICY, 1.0)
        record = await state_store.read(_BREAKER, _POLICY)

        assert first.previous is SharedBreakerState.CLOSED
        assert second.previous is None
        assert record.state is SharedBreakerState.OPEN
        assert record.open_remaining > 4.0

    @pytest.mark.anyio
    async def test_breakers_are_independent(
        self, state_store: BreakerStateStore
    ) -> None:
        await self._open(state_store)

        other = await state_store.acquire("inventory", _POLICY)

        assert other.admitted is True

    @pytest.mark.anyio
    async def test_second_instance_sees_open(
        self,
        state_store: BreakerStateStore,
        make_state_store: StateStoreMaker,
        clock: FakeClock,
    ) -> None:
        if not self.shared:
            pytest.skip("instances of this backend do not share state")
        await self._open(state_store)
        other = make_state_store(clock)
        await other.open()
        try:
            rejected = await other.acquire(_BREAKER, _POLICY)
        finally:
            await other.close()

        assert rejected.admitted is False
        assert rejected.state is SharedBreakerState.OPEN

    @pytest.mark.anyio
    async def test_close_is_idempotent(self, state_store: BreakerStateStore) -> None:
        await state_store.close()
        await state_store.close()
