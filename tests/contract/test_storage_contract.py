"""The fallback store contract, run against the built-in backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from faultguard_core.storage.memory import MemoryStore
from faultguard_core.storage.sqlite import SQLiteStore
from faultguard_core.testing.storage_contract import FallbackStoreContract


class TestMemoryStoreContract(FallbackStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[MemoryStore]:
        assert self.max_entry_bytes is not None
        store = MemoryStore(max_entry_bytes=self.max_entry_bytes)
        await store.open()
        yield store
        await store.close()


class TestSQLiteStoreContract(FallbackStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SQLiteStore]:
        assert self.max_entry_bytes is not None
        store = SQLiteStore(
            tmp_path / "fallback.db", max_entry_bytes=self.max_entry_bytes
        )
        await store.open()
        yield store
        await store.close()
