"""The guard: one upstream call through breaker, retries, timeouts and fallback.

`Guard.execute(call)` returns a `CallResult` (from the upstream or from the
fallback store) or raises a `CallFailedError` subclass that says why nothing
could be delivered.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

from faultguard_core._headers import (
    IDEMPOTENT_METHODS,
    credentials_hash,
    forwardable,
    has_header,
    storable,
)
from faultguard_core.backoff.base import BackoffFactory
from faultguard_core.breaker import (
    BreakerState,
    CircuitBreaker,
    Outcome,
    StateChange,
)
from faultguard_core.breakers import BreakerRegistry
from faultguard_core.clock import Clock, SystemClock
from faultguard_core.errors import (
    CircuitOpenError,
    CircuitRejectedError,
    ConfigError,
    DeadlineExceededError,
    StorageError,
    UpstreamFailedError,
)
from faultguard_core.events import CallFinished, FallbackServed, RetryScheduled
from faultguard_core.exporters.base import ExporterContext, MetricsExporter
from faultguard_core.plugin_host import PluginHost, build_plugin_host
from faultguard_core.settings import ServicePolicy, Settings
from faultguard_core.storage.base import EntryKey, FallbackStore, StoredResponse
from faultguard_core.transport.base import (
    Transport,
    TransportError,
    UpstreamRequest,
    UpstreamResponse,
)

logger = logging.getLogger("faultguard")

FAILURE_STATUSES = frozenset({408, 429})
"""Statuses below 500 that count as failures; every 5xx is a failure too."""


def is_failure_status(status_code: int) -> bool:
    """Return True if a response with this status counts as an upstream failure."""
    return status_code >= 500 or status_code in FAILURE_STATUSES


@dataclass(frozen=True, slots=True)
class Call:
    """One guarded request.

    `timeout` (seconds) may shorten the configured `request.deadline` for
    this call but never lengthens it. `caller` identifies the authenticated
    caller of faultguard itself, so fallback entries are never shared
    between callers.
    """

    key: str
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    service: str | None = None
    timeout: float | None = None
    caller: str = ""


@dataclass(frozen=True, slots=True)
class CallResult:
    """A delivered response. Fallback results carry `stored_at` and `age_seconds`."""

    source: Literal["upstream", "fallback"]
    status_code: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    attempts: int
    service: str
    state: BreakerState
    stored_at: float | None = None
    age_seconds: float | None = None


def origin_of(url: str) -> str:
    """Return `host:port` of an absolute URL, the breaker name of unnamed calls."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


class Guard:
    """Runs calls through breakers, retries and the fallback store.

    Use it as an async context manager: entering opens the store and starts
    the exporters, leaving closes the store, the transport and the exporters.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: FallbackStore,
        transport: Transport,
        backoff: dict[str, BackoffFactory],
        exporters: Iterable[MetricsExporter] = (),
        plugins: PluginHost | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.transport = transport
        self.exporters: list[MetricsExporter] = list(exporters)
        self.plugins = plugins
        self.clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._backoff = backoff
        self._events = plugins is not None and plugins.has_event_listeners()
        self.breakers = BreakerRegistry(self.clock, self._on_state_change)
        self._check_backoff(settings.default_policy())
        for name in settings.services:
            self._check_backoff(settings.policy_for(name))

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        plugins: PluginHost | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> Guard:
        """Build a guard from the backend, transport and exporters named in settings."""
        host = plugins or build_plugin_host(settings)
        store = host.storage_backends.get(settings.storage.backend)(settings)
        transport = host.transports.get(settings.transport.name)(settings)
        backoff = {
            name: host.backoff_strategies.get(name)
            for name in host.backoff_strategies.names()
        }
        guard = cls(
            settings,
            store=store,
            transport=transport,
            backoff=backoff,
            plugins=host,
            clock=clock,
            rng=rng,
        )
        context = ExporterContext(
            service_name_limit=settings.metrics.max_services,
            snapshots=guard.breakers.snapshots,
            host=settings.metrics.host,
            port=settings.metrics.port,
        )
        for name in settings.metrics.exporters:
            guard.exporters.append(host.metric_exporters.get(name)(settings, context))
        return guard

    def _check_backoff(self, policy: ServicePolicy) -> None:
        if policy.retry.backoff not in self._backoff:
            known = ", ".join(sorted(self._backoff)) or "none"
            raise ConfigError(
                f"retry.backoff = {policy.retry.backoff!r}: no backoff strategy of"
                f" that name is registered (registered: {known})"
            )

    async def __aenter__(self) -> Guard:
        await self.store.open()
        for exporter in self.exporters:
            exporter.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for exporter in self.exporters:
            exporter.stop()
        await self.transport.aclose()
        await self.store.close()

    def policy(self, service: str | None) -> ServicePolicy:
        """Return the policy for a configured service, or the global one."""
        if service is None:
            return self.settings.default_policy()
        try:
            return self.settings.policy_for(service)
        except KeyError:
            raise ConfigError(f"unknown service {service!r}") from None

    async def execute(self, call: Call) -> CallResult:
        """Run `call` and return the upstream or the fallback response.

        Raises `CircuitRejectedError`, `UpstreamFailedError` or
        `DeadlineExceededError` when there is neither. Cancellation counts as
        an excluded outcome for the breaker and propagates.
        """
        started = self.clock.monotonic()
        policy = self.policy(call.service)
        service = call.service or origin_of(call.url)
        breaker = self.breakers.get(service, policy.breaker)
        entry_key = EntryKey(
            call.key, call.method, call.url, credentials_hash(call.headers, call.caller)
        )
        try:
            result = await self._attempt_all(call, policy, service, breaker, entry_key)
        except BaseException as exc:
            self._finish(call, service, started, exc)
            raise
        self._finish(call, service, started, result)
        return result

    async def _attempt_all(
        self,
        call: Call,
        policy: ServicePolicy,
        service: str,
        breaker: CircuitBreaker,
        entry_key: EntryKey,
    ) -> CallResult:
        budget = policy.request.deadline
        if call.timeout is not None:
            budget = min(budget, call.timeout)
        fetched_at = self.clock.wall()
        deadline = self.clock.monotonic() + budget
        request = UpstreamRequest(
            method=call.method,
            url=call.url,
            headers=forwardable(call.headers),
            body=call.body,
        )
        retry_allowed = call.method in IDEMPOTENT_METHODS or has_header(
            call.headers, "idempotency-key"
        )
        backoff = self._backoff[policy.retry.backoff](policy.retry, self._rng)

        attempts = 0
        last_status: int | None = None
        last_error = "no attempt was made"
        while True:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return await self._give_up_deadline(
                    service, breaker, entry_key, attempts
                )
            try:
                permit = breaker.acquire()
            except CircuitOpenError as exc:
                return await self._give_up_open(
                    service, breaker, entry_key, attempts, exc.retry_after
                )

            attempts += 1
            if attempts > 1:
                for exporter in self.exporters:
                    exporter.retry_sent(service)
            response: UpstreamResponse | None = None
            request_sent = True
            try:
                response = await self.transport.send(
                    request, min(policy.request.timeout, remaining)
                )
            except TransportError as exc:
                breaker.record(permit, Outcome.FAILURE)
                last_status = None
                last_error = f"{type(exc).__name__}: {exc}"
                request_sent = exc.request_sent
                reason = type(exc).__name__
            except BaseException:
                breaker.record(permit, Outcome.EXCLUDED)
                raise
            else:
                if not is_failure_status(response.status_code):
                    breaker.record(permit, Outcome.SUCCESS)
                    if 200 <= response.status_code < 300:
                        await self._store(entry_key, response, fetched_at)
                    return CallResult(
                        source="upstream",
                        status_code=response.status_code,
                        headers=response.headers,
                        body=response.body,
                        attempts=attempts,
                        service=service,
                        state=breaker.state,
                    )
                breaker.record(permit, Outcome.FAILURE)
                last_status = response.status_code
                last_error = f"upstream answered {response.status_code}"
                reason = str(response.status_code)

            for exporter in self.exporters:
                exporter.attempt_failed(service, reason)

            # Decide whether another attempt may follow.
            if attempts > policy.retry.max_retries:
                break
            if request_sent and not retry_allowed:
                break
            if breaker.state is BreakerState.OPEN:
                break
            delay = backoff.next_delay(attempts)
            if response is not None:
                delay = max(delay, _retry_after(response, policy.retry.max_delay))
            if self.clock.monotonic() + delay >= deadline:
                return await self._give_up_deadline(
                    service, breaker, entry_key, attempts
                )
            if self._events and self.plugins is not None:
                self.plugins.emit_retry_scheduled(
                    RetryScheduled(service, call.key, attempts, delay, reason)
                )
            await self.clock.sleep(delay)

        if self.clock.monotonic() >= deadline:
            return await self._give_up_deadline(service, breaker, entry_key, attempts)
        fallback = await self._fallback(
            service, entry_key, attempts, breaker, "upstream_failed"
        )
        if fallback is not None:
            return fallback
        raise UpstreamFailedError(
            f"upstream failed after {attempts} attempt(s): {last_error}",
            service=service,
            attempts=attempts,
            state=breaker.state.value,
            upstream_status=last_status,
        )

    async def _give_up_open(
        self,
        service: str,
        breaker: CircuitBreaker,
        entry_key: EntryKey,
        attempts: int,
        retry_after: float,
    ) -> CallResult:
        fallback = await self._fallback(
            service, entry_key, attempts, breaker, "circuit_open"
        )
        if fallback is not None:
            return fallback
        raise CircuitRejectedError(
            f"circuit {service!r} is {breaker.state.value} and no fallback is stored",
            service=service,
            attempts=attempts,
            state=breaker.state.value,
            retry_after=retry_after,
        )

    async def _give_up_deadline(
        self, service: str, breaker: CircuitBreaker, entry_key: EntryKey, attempts: int
    ) -> CallResult:
        fallback = await self._fallback(
            service, entry_key, attempts, breaker, "deadline"
        )
        if fallback is not None:
            return fallback
        raise DeadlineExceededError(
            f"deadline passed after {attempts} attempt(s)",
            service=service,
            attempts=attempts,
            state=breaker.state.value,
        )

    async def _fallback(
        self,
        service: str,
        entry_key: EntryKey,
        attempts: int,
        breaker: CircuitBreaker,
        reason: str,
    ) -> CallResult | None:
        try:
            stored = await self.store.get(entry_key)
        except StorageError as exc:
            logger.warning(
                "fallback_read_failed", extra={"service": service, "error": str(exc)}
            )
            return None
        if stored is None:
            return None
        age = max(0.0, self.clock.wall() - stored.stored_at)
        for exporter in self.exporters:
            exporter.fallback_served(service, age)
        if self._events and self.plugins is not None:
            self.plugins.emit_fallback_served(
                FallbackServed(service, entry_key.key, stored.status_code, age, reason)
            )
        return CallResult(
            source="fallback",
            status_code=stored.status_code,
            headers=stored.headers,
            body=stored.body,
            attempts=attempts,
            service=service,
            state=breaker.state,
            stored_at=stored.stored_at,
            age_seconds=age,
        )

    async def _store(
        self, entry_key: EntryKey, response: UpstreamResponse, fetched_at: float
    ) -> None:
        entry = StoredResponse(
            status_code=response.status_code,
            headers=storable(response.headers),
            body=response.body,
            fetched_at=fetched_at,
            stored_at=self.clock.wall(),
        )
        try:
            await self.store.put(entry_key, entry)
        except StorageError as exc:
            # The caller still gets the fresh response; only the fallback copy is lost.
            logger.warning("fallback_write_failed", extra={"error": str(exc)})

    def _finish(self, call: Call, service: str, started: float, result: object) -> None:
        duration = self.clock.monotonic() - started
        status: int | None = None
        source: str
        if isinstance(result, CallResult):
            source = result.source
            outcome = "success" if result.source == "upstream" else "failure"
            status = result.status_code
            attempts = result.attempts
        else:
            source = "none"
            outcome = _outcome_of(result)
            attempts = getattr(result, "attempts", 0)
        for exporter in self.exporters:
            exporter.call_finished(service, source, outcome, duration)
        if self._events and self.plugins is not None:
            self.plugins.emit_call_finished(
                CallFinished(
                    service, call.key, source, outcome, status, attempts, duration
                )
            )

    def _on_state_change(self, change: StateChange) -> None:
        logger.warning(
            "breaker_state_changed",
            extra={
                "service": change.name,
                "old_state": change.old.value,
                "new_state": change.new.value,
            },
        )
        for exporter in self.exporters:
            exporter.state_changed(change)
        if self.plugins is not None:
            self.plugins.emit_state_change(change)


def _outcome_of(error: object) -> str:
    if isinstance(error, CircuitRejectedError):
        return "rejected"
    if isinstance(error, DeadlineExceededError):
        return "deadline"
    if isinstance(error, UpstreamFailedError):
        return "failure"
    if isinstance(error, Exception):
        return "error"
    return "cancelled"


def _retry_after(response: UpstreamResponse, cap: float) -> float:
    """Return a valid delta-seconds `Retry-After` of a 429 or 503, capped; else 0."""
    if response.status_code not in (429, 503):
        return 0.0
    value = response.header("retry-after")
    if value is None or not value.strip().isdigit():
        return 0.0
    seconds = float(value.strip())
    if not math.isfinite(seconds):
        return 0.0
    return min(seconds, cap)
