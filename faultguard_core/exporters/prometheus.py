"""The built-in Prometheus exporter, served on its own port at `/metrics`.

The five `circuit_breaker_*` metrics keep the names and the `service` label
that existing dashboards use. Each app gets its own `CollectorRegistry`, so
several apps in one process (tests, library users) never share counters.

When `PROMETHEUS_MULTIPROC_DIR` is set (`faultguard serve` with
`server.workers` above 1), prometheus_client writes every value to files in
that directory, the parent process serves their sum, and the exporter binds
no port. The state gauge then becomes a `mostrecent` gauge that each worker
sets when the state it reads changes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from faultguard_core._markers import hookimpl
from faultguard_core.breaker import BreakerSnapshot, StateChange
from faultguard_core.exporters.base import ExporterContext, MetricsExporter
from faultguard_core.settings import Settings

OVERFLOW_SERVICE = "__other__"
"""The `service` label value that takes every service over the label limit."""

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

MULTIPROCESS_ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
"""The variable that switches prometheus_client to shared value files."""

STATE_POLL_INTERVAL = 1.0
"""Seconds between two reads of the breaker states in multiprocess mode."""

STATE_HELP = (
    "Breaker state: 0 closed, 1 open, 2 half-open, 3 forced open,"
    " 4 forced closed, 5 disabled, 6 metrics-only."
)


class ServiceLabels:
    """Caps the number of distinct `service` label values.

    The first `limit` services keep their own name; later ones share
    `OVERFLOW_SERVICE`, so a caller sending many origins cannot blow up the
    number of time series.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, service: str) -> str:
        if service in self._known:
            return service
        with self._lock:
            if service in self._known:
                return service
            if len(self._known) >= self._limit:
                return OVERFLOW_SERVICE
            self._known.add(service)
            return service

    def admitted(self, service: str) -> bool:
        return self(service) == service


class _StateCollector(Collector):
    """Reads breaker states at scrape time, so the gauge is never stale."""

    def __init__(
        self,
        snapshots: Callable[[], Iterable[BreakerSnapshot]],
        labels: ServiceLabels,
    ) -> None:
        self._snapshots = snapshots
        self._labels = labels

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "circuit_breaker_state", STATE_HELP, labels=["service"]
        )
        for snapshot in self._snapshots():
            if self._labels.admitted(snapshot.name):
                gauge.add_metric([snapshot.name], snapshot.state.gauge_value)
        yield gauge


class PrometheusExporter(MetricsExporter):
    """Keeps the metrics in a private registry and serves them over HTTP."""

    def __init__(self, context: ExporterContext) -> None:
        # The `_created` series double the exposition size and no dashboard
        # reads them. The switch is process-wide in prometheus_client.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self._context = context
        self._labels = ServiceLabels(context.service_name_limit)
        self._initialized: set[str] = set()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.multiprocess = MULTIPROCESS_ENV_VAR in os.environ
        self._state_values: dict[str, int] = {}
        self._state_lock = threading.Lock()
        self._poll_stop = threading.Event()
        self._poller: threading.Thread | None = None

        self.state: Gauge | None = None
        if self.multiprocess:
            self.state = Gauge(
                "circuit_breaker_state",
                STATE_HELP,
                ["service"],
                multiprocess_mode="mostrecent",
                registry=self.registry,
            )
        else:
            self.registry.register(_StateCollector(context.snapshots, self._labels))
        self.failures = Counter(
            "circuit_breaker_failures",
            "Failed upstream attempts.",
            ["service"],
            registry=self.registry,
        )
        self.retries = Counter(
            "circuit_breaker_retries",
            "Retry attempts sent upstream.",
            ["service"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "circuit_breaker_latency_seconds",
            "Duration of each guarded call, end to end.",
            ["service"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fallback_success = Counter(
            "circuit_breaker_fallback_success",
            "Calls answered from the fallback store.",
            ["service"],
            registry=self.registry,
        )
        self.calls = Counter(
            "circuit_breaker_calls",
            "Guarded calls by outcome and by the source of the response.",
            ["service", "outcome", "source"],
            registry=self.registry,
        )
        self.transitions = Counter(
            "circuit_breaker_state_transitions",
            "Breaker state transitions, by the state entered.",
            ["service", "state"],
            registry=self.registry,
        )
        self.attempt_failures = Counter(
            "circuit_breaker_attempt_failures",
            "Failed upstream attempts by reason (status code or error kind).",
            ["service", "reason"],
            registry=self.registry,
        )
        self.retries_refused = Counter(
            "circuit_breaker_retries_refused",
            "Retries refused by the service's retry budget.",
            ["service"],
            registry=self.registry,
        )
        self.bulkhead_rejections = Counter(
            "circuit_breaker_bulkhead_rejections",
            "Calls rejected because the service ran request.max_concurrency calls.",
            ["service"],
            registry=self.registry,
        )
        self.pool_timeouts = Counter(
            "circuit_breaker_pool_timeouts",
            "Attempts that found no free pooled upstream connection in time.",
            ["service"],
            registry=self.registry,
        )
        self.deadline_expiries = Counter(
            "circuit_breaker_deadline_expiries",
            "Calls ended by their deadline before a deliverable response.",
            ["service"],
            registry=self.registry,
        )
        self.storage_degradations = Counter(
            "circuit_breaker_storage_degradations",
            "Switches of a storage role to its local stand-in after a backend failure.",
            ["role"],
            registry=self.registry,
        )

    def _service(self, service: str) -> str:
        """Return the label for `service`, creating its series at 0 on first use.

        Dashboards divide by these series, so each service shows every one of
        them from its first call, not only after the first retry or fallback.
        """
        label = self._labels(service)
        if label not in self._initialized:
            self._initialized.add(label)
            self.failures.labels(label)
            self.retries.labels(label)
            self.fallback_success.labels(label)
            self.latency.labels(label)
            self.retries_refused.labels(label)
            self.bulkhead_rejections.labels(label)
            self.pool_timeouts.labels(label)
            self.deadline_expiries.labels(label)
        return label

    def start(self) -> None:
        """Serve `/metrics`, or in multiprocess mode start the state poller.

        In multiprocess mode the parent process serves the metrics port, so
        nothing is bound here.
        """
        if self.multiprocess:
            self._poll_stop.clear()
            self._poller = threading.Thread(
                target=self._poll_states, name="faultguard-state-gauge", daemon=True
            )
            self._poller.start()
            return
        if self._context.port == 0:
            return
        self._server, self._thread = start_http_server(
            self._context.port, addr=self._context.host, registry=self.registry
        )

    def _poll_states(self) -> None:
        """Set the state gauge from the snapshots until `stop()`.

        Reading the snapshots also applies due open-to-half-open transitions.
        """
        while not self._poll_stop.wait(STATE_POLL_INTERVAL):
            for snapshot in self._context.snapshots():
                self._set_state(snapshot.name, snapshot.state.gauge_value)

    def _set_state(self, service: str, value: int) -> None:
        """Set the gauge of `service` when its value differs from the last one set.

        A `mostrecent` gauge shows the value with the newest timestamp across
        the workers. Writing only changes keeps a worker that still reads an
        old state from overwriting, every poll, a newer state set by another.
        """
        if self.state is None or not self._labels.admitted(service):
            return
        with self._state_lock:
            if self._state_values.get(service) == value:
                return
            self._state_values[service] = value
            self.state.labels(service).set(value)

    def stop(self) -> None:
        if self._poller is not None:
            self._poll_stop.set()
            self._poller.join(timeout=5)
            self._poller = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def attempt_failed(self, service: str, reason: str) -> None:
        label = self._service(service)
        self.failures.labels(label).inc()
        self.attempt_failures.labels(label, reason).inc()

    def retry_sent(self, service: str) -> None:
        self.retries.labels(self._service(service)).inc()

    def retry_refused(self, service: str) -> None:
        self.retries_refused.labels(self._service(service)).inc()

    def bulkhead_rejected(self, service: str) -> None:
        self.bulkhead_rejections.labels(self._service(service)).inc()

    def pool_timed_out(self, service: str) -> None:
        self.pool_timeouts.labels(self._service(service)).inc()

    def deadline_expired(self, service: str) -> None:
        self.deadline_expiries.labels(self._service(service)).inc()

    def call_finished(
        self, service: str, source: str, outcome: str, duration: float
    ) -> None:
        label = self._service(service)
        self.latency.labels(label).observe(duration)
        self.calls.labels(label, outcome, source).inc()

    def fallback_served(self, service: str, age_seconds: float) -> None:
        self.fallback_success.labels(self._service(service)).inc()

    def state_changed(self, change: StateChange) -> None:
        self.transitions.labels(self._service(change.name), change.new.value).inc()
        self._set_state(change.name, change.new.gauge_value)

    def storage_degraded(self, role: str) -> None:
        self.storage_degradations.labels(role).inc()


def _build(settings: Settings, context: ExporterContext) -> MetricsExporter:
    return PrometheusExporter(context)


@hookimpl
def faultguard_register_metric_exporters(
    register: Callable[
        [str, Callable[[Settings, ExporterContext], MetricsExporter]], None
    ],
) -> None:
    register("prometheus", _build)
