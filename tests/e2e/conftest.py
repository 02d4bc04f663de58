"""Fixtures that run `faultguard serve` as a subprocess against a real upstream."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from server_process import Server, start_server
from upstream import ScriptedUpstream


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        yield server


@pytest.fixture
def faultguard(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers with `FAULTGUARD_*` settings; all are stopped after the test."""
    started: list[Server] = []

    def start(**settings: str) -> Server:
        server = start_server(tmp_path, settings)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
