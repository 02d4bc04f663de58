"""Unit tests of `PrometheusExporter` when `PROMETHEUS_MULTIPROC_DIR` is set.

prometheus_client is imported by the test process without that variable,
so values stay in memory here. The tests check what the exporter itself
does differently: no listener, and a state gauge that it sets.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faultguard_core.breaker import BreakerSnapshot, BreakerState, StateChange
from faultguard_core.exporters import prometheus
from faultguard_core.exporters.base import ExporterContext
from faultguard_core.exporters.prometheus import PrometheusExporter


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def snapshot(name: str, state: BreakerState) -> BreakerSnapshot:
    return BreakerSnapshot(
        name=name,
        state=state,
        consecutive_failures=0,
        half_open_in_flight=0,
        half_open_successes=0,
        open_remaining=0.0,
    )


def state_samples(exporter: PrometheusExporter) -> dict[str, float]:
    family = next(
        family
        for family in exporter.registry.collect()
        if family.name == "circuit_breaker_state"
    )
    return {sample.labels["service"]: sample.value for sample in family.samples}


@pytest.fixture
def snapshots() -> list[BreakerSnapshot]:
    return []


@pytest.fixture
def exporter(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    snapshots: list[BreakerSnapshot],
) -> Iterator[PrometheusExporter]:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(prometheus, "STATE_POLL_INTERVAL", 0.01)
    context = ExporterContext(
        service_name_limit=10,
        snapshots=lambda: list(snapshots),
        host="127.0.0.1",
        port=free_port(),
    )
    created = PrometheusExporter(context)
    yield created
    created.stop()


def test_multiprocess_start_binds_nothing(exporter: PrometheusExporter) -> None:
    exporter.start()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", exporter._context.port))

    assert exporter.multiprocess is True


def test_multiprocess_transition_sets_gauge(exporter: PrometheusExporter) -> None:
    change = StateChange("payments", BreakerState.CLOSED, BreakerState.OPEN, at=0.0)

    exporter.state_changed(change)

    assert state_samples(exporter) == {"payments": 1.0}


def test_multiprocess_poller_reads_snapshots(
    exporter: PrometheusExporter, snapshots: list[BreakerSnapshot]
) -> None:
    snapshots.append(snapshot("orders", BreakerState.HALF_OPEN))

    exporter.start()
    deadline = time.monotonic() + 3
    while not state_samples(exporter) and time.monotonic() < deadline:
        time.sleep(0.01)

    assert state_samples(exporter) == {"orders": 2.0}


def test_multiprocess_stop_ends_poller(exporter: PrometheusExporter) -> None:
    exporter.start()
    poller = exporter._poller

    exporter.stop()

    assert poller is not None
    assert not poller.is_alive()
