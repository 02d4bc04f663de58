"""The metric exporter contract."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from faultguard_core.breaker import BreakerSnapshot, StateChange


@dataclass(frozen=True, slots=True)
class ExporterContext:
    """What an exporter may read: its settings and the breakers' live states.

    `snapshots` returns a snapshot of every breaker, applying due
    open-to-half-open transitions, so an exporter that reads it at scrape
    time never reports a stale open state.
    """

    service_name_limit: int
    snapshots: Callable[[], Iterable[BreakerSnapshot]]
    host: str
    port: int


class MetricsExporter:
    """Receives measurements from the guard. Every method must be cheap and
    must not block: it runs on the request path.

    Methods do nothing by default, so an exporter implements only what it
    exports. `service` is a configured service name or a URL origin
    (`host:port`); exporters cap how many distinct values they keep.
    """

    def start(self) -> None:
        """Start serving or pushing; called once when the app starts."""

    def stop(self) -> None:
        """Stop serving or flush; called once at shutdown."""

    def attempt_failed(self, service: str, reason: str) -> None:
        """Count one upstream attempt that failed (`reason`: status or error)."""

    def retry_sent(self, service: str) -> None:
        """Count one retry attempt that was sent upstream."""

    def retry_refused(self, service: str) -> None:
        """Count one retry that the service's retry budget refused."""

    def bulkhead_rejected(self, service: str) -> None:
        """Count one call rejected because the service ran `max_concurrency` calls."""

    def pool_timed_out(self, service: str) -> None:
        """Count one attempt that found no free pooled connection in time."""

    def deadline_expired(self, service: str) -> None:
        """Count one call ended by its deadline (`request.deadline` or `timeout`)."""

    def call_finished(
        self, service: str, source: str, outcome: str, duration: float
    ) -> None:
        """Record one finished call, end to end.

        `source` is `upstream`, `fallback` or `none`; `outcome` is
        `success`, `failure`, `rejected`, `deadline`, `cancelled` or `error`.
        """

    def fallback_served(self, service: str, age_seconds: float) -> None:
        """Count one call served from the fallback store."""

    def state_changed(self, change: StateChange) -> None:
        """Record one breaker transition."""

    def storage_degraded(self, role: str) -> None:
        """Count one switch of a storage role to its local stand-in.

        `role` is `fallback` (memory store) or `breaker_state` (in-process
        breakers); it is counted when the backend fails, not per request.
        """
