"""MemoryStore behaviour beyond the store contract: LRU eviction and settings."""

from __future__ import annotations

import pytest

from faultguard_core.hookspecs import StorageFactory
from faultguard_core.settings import Settings
from faultguard_core.storage import memory as memory_module
from faultguard_core.storage.base import EntryKey, StoredResponse
from faultguard_core.storage.memory import DEFAULT_MAX_ENTRIES, MemoryStore


def _key(name: str) -> EntryKey:
    return EntryKey(key=name, method="GET", url=f"https://api.example.test/{name}")


def _response(fetched_at: float = 100.0) -> StoredResponse:
    return StoredResponse(
        status_code=200,
        headers=(),
        body=b"payload",
        fetched_at=fetched_at,
        stored_at=fetched_at + 1.0,
    )


@pytest.mark.anyio
async def test_memory_evicts_least_recent_put() -> None:
    store = MemoryStore(max_entries=2)

    await store.put(_key("a"), _response())
    await store.put(_key("b"), _response())
    await store.put(_key("c"), _response())

    assert len(store) == 2
    assert await store.get(_key("a")) is None
    assert await store.get(_key("b")) == _response()
    assert await store.get(_key("c")) == _response()


@pytest.mark.anyio
async def test_memory_get_refreshes_recency() -> None:
    store = MemoryStore(max_entries=2)
    await store.put(_key("a"), _response())
    await store.put(_key("b"), _response())

    await store.get(_key("a"))
    await store.put(_key("c"), _response())

    assert await store.get(_key("b")) is None
    assert await store.get(_key("a")) == _response()
    assert await store.get(_key("c")) == _response()


@pytest.mark.anyio
async def test_memory_put_refreshes_recency() -> None:
    store = MemoryStore(max_entries=2)
    await store.put(_key("a"), _response())
    await store.put(_key("b"), _response())

    await store.put(_key("a"), _response(fetched_at=200.0))
    await store.put(_key("c"), _response())

    assert await store.get(_key("b")) is None
    assert await store.get(_key("a")) == _response(fetched_at=200.0)


@pytest.mark.anyio
async def test_memory_rejected_put_keeps_recency() -> None:
    store = MemoryStore(max_entries=2)
    await store.put(_key("a"), _response(fetched_at=200.0))
    await store.put(_key("b"), _response())

    written = await store.put(_key("a"), _response(fetched_at=100.0))
    await store.put(_key("c"), _response())

    assert written is False
    assert await store.get(_key("a")) is None
    assert await store.get(_key("b")) == _response()


@pytest.mark.anyio
async def test_memory_update_does_not_evict() -> None:
    store = MemoryStore(max_entries=2)
    await store.put(_key("a"), _response())
    await store.put(_key("b"), _response())

    await store.put(_key("b"), _response(fetched_at=300.0))

    assert len(store) == 2
    assert await store.get(_key("a")) == _response()


@pytest.mark.anyio
async def test_memory_delete_frees_slot() -> None:
    store = MemoryStore(max_entries=2)
    await store.put(_key("a"), _response())
    await store.put(_key("b"), _response())

    await store.delete(_key("a"))
    await store.put(_key("c"), _response())

    assert len(store) == 2
    assert await store.get(_key("b")) == _response()


@pytest.mark.anyio
async def test_memory_close_drops_entries() -> None:
    store = MemoryStore()
    await store.put(_key("a"), _response())

    await store.close()

    assert len(store) == 0


@pytest.mark.parametrize("max_entries", [0, -1])
def test_memory_rejects_invalid_max_entries(max_entries: int) -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryStore(max_entries=max_entries)


def test_memory_rejects_invalid_max_entry_bytes() -> None:
    with pytest.raises(ValueError, match="max_entry_bytes"):
        MemoryStore(max_entry_bytes=0)


def test_memory_hook_registers_factory() -> None:
    registered: dict[str, StorageFactory] = {}
    settings = Settings(
        storage={
            "backend": "memory",
            "max_entry_bytes": 2048,
            "max_entries": 7,
            "max_bytes": 9000,
        },
        fallback={"max_age": "1h"},
    )

    memory_module.faultguard_register_storage_backends(registered.__setitem__)
    store = registered["memory"](settings)

    assert isinstance(store, MemoryStore)
    assert store.max_entry_bytes == 2048
    assert store.max_entries == 7
    assert store.max_bytes == 9000
    assert store.max_age == 3600.0


def test_memory_zero_max_age_means_none() -> None:
    settings = Settings(storage={"backend": "memory"}, fallback={"max_age": 0})

    store = memory_module._build(settings)

    assert store.max_age is None


def test_memory_default_max_entries() -> None:
    assert MemoryStore().max_entries == DEFAULT_MAX_ENTRIES


def _sized(body_bytes: int, fetched_at: float = 100.0) -> StoredResponse:
    return StoredResponse(
        status_code=200,
        headers=(("a", "b"),),
        body=b"x" * body_bytes,
        fetched_at=fetched_at,
        stored_at=fetched_at + 1.0,
    )


@pytest.mark.anyio
async def test_memory_max_bytes_evicts_lru() -> None:
    # Each entry counts 98 body bytes plus 2 header bytes.
    store = MemoryStore(max_bytes=250)
    await store.put(_key("a"), _sized(98))
    await store.put(_key("b"), _sized(98))
    await store.get(_key("a"))

    await store.put(_key("c"), _sized(98))

    assert await store.get(_key("b")) is None
    assert await store.get(_key("a")) == _sized(98)
    assert store.total_bytes == 200


@pytest.mark.anyio
async def test_memory_entry_over_max_bytes_rejected() -> None:
    store = MemoryStore(max_bytes=50, max_entry_bytes=1000)

    written = await store.put(_key("a"), _sized(60))

    assert written is False
    assert len(store) == 0
    assert store.total_bytes == 0


@pytest.mark.anyio
async def test_memory_byte_count_follows_updates() -> None:
    store = MemoryStore()
    await store.put(_key("a"), _sized(10))
    await store.put(_key("a"), _sized(30, fetched_at=200.0))
    await store.put(_key("b"), _sized(5))

    await store.delete(_key("b"))

    assert store.total_bytes == 32


@pytest.mark.parametrize("max_bytes", [0, -5])
def test_memory_rejects_invalid_max_bytes(max_bytes: int) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        MemoryStore(max_bytes=max_bytes)


def test_memory_cannot_persist_breaker_state() -> None:
    from faultguard_core.errors import ConfigError
    from faultguard_core.guard import Guard

    settings = Settings(
        storage={"backend": "memory"},
        breaker={"persist_state": True},
        plugins={"autoload": False},
        metrics={"exporters": []},
    )

    with pytest.raises(ConfigError, match="cannot keep breaker state"):
        Guard.from_settings(settings)
