"""Shared fixtures: a clean environment and the anyio backend."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_faultguard_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove FAULTGUARD_* variables so the developer's shell cannot leak in."""
    for name in list(os.environ):
        if name.startswith("FAULTGUARD_"):
            monkeypatch.delenv(name)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
