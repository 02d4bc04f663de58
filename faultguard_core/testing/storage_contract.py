"""The behaviour every `FallbackStore` backend must have, as a pytest suite.

Subclass `FallbackStoreContract` in a test module (the subclass name starts
with `Test`) and give it a `store` fixture that yields an opened store built
with `max_entry_bytes` bytes as its entry limit, then closes it::

    class TestMyStore(FallbackStoreContract):
        @pytest.fixture
        async def store(self, tmp_path):
            store = MyStore(tmp_path / "x", max_entry_bytes=self.max_entry_bytes)
            await store.open()
            yield store
            await store.close()

The tests are async and use anyio's pytest plugin, so the project needs an
`anyio_backend` fixture (anyio's plugin provides one that returns "asyncio").
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import ClassVar

import anyio
import pytest

from faultguard_core.storage.base import EntryKey, FallbackStore, StoredResponse

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
    """Tests that a `FallbackStore` backend must pass, run on the `store` fixture.

    `max_entry_bytes` is the body size limit that the subclass's `store`
    fixture must give the store. A subclass sets it to None for a backend
    without a limit, which skips the size tests.
    """

    max_entry_bytes: ClassVar[int | None] = 1024

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
