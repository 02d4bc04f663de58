"""The guard: one upstream call through breaker, retries, timeouts and fallback.

`Guard.execute(call)` returns a `CallResult` (from the upstream or from the
fallback store) or raises a `CallFailedError` subclass that names why nothing
could be delivered.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

from faultguard_core._headers import (
    credentials_hash,
    forwardable,
    storable,
)
from faultguard_core.backoff.base import BackoffFactory
from faultguard_core.breaker import (
    BreakerEvent,
    BreakerSnapshot,
    BreakerState,
    CallRejected,
    CircuitBreaker,
    Outcome,
    Permit,
    StateChange,
)
from faultguard_core.breakers import BreakerRegistry
from faultguard_core.bulkhead import BulkheadRejectedError
from faultguard_core.clock import Clock, SystemClock
from faultguard_core.errors import (
    CallFailedError,
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
from faultguard_core.retry import (
    ServiceLimits,
    UpstreamBusyError,
    error_kind,
    may_resend,
)
from faultguard_core.retry_after import parse_retry_after
from faultguard_core.settings import ServicePolicy, Settings
from faultguard_core.storage.base import EntryKey, FallbackStore, StoredResponse
from faultguard_core.storage.degrading import DegradingFallbackStore
from faultguard_core.storage.shared import SharedBreakers, SharedPermit
from faultguard_core.storage.wiring import build_fallback_store, build_shared_breakers
from faultguard_core.transport.base import (
    PoolTimeoutError,
    Transport,
    TransportError,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTimeoutError,
)

logger = logging.getLogger("faultguard")

FAILURE_STATUSES = frozenset({408, 429})
"""Statuses below 500 that count as failures; every 5xx is a failure too."""


RETRY_AFTER_STATUSES = frozenset({429, 503})
"""Statuses whose `Retry-After` header sets the earliest retry."""


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
    fallback_reason: str | None = None
    """Why a fallback was served: `upstream_failed`, `circuit_open`, `deadline`,
    `bulkhead` or `pool_timeout`; None for upstream results."""


_FALLBACK_OUTCOMES = {
    "upstream_failed": "failure",
    "circuit_open": "rejected",
    "bulkhead": "rejected",
    "pool_timeout": "rejected",
    "deadline": "deadline",
}
"""The call outcome reported for each reason a fallback was served."""


def origin_of(url: str) -> str:
    """Return `host:port` of an absolute URL, the breaker name of unnamed calls."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


class _CallRun:
    """The state of one call across its attempts.

    The fields from `response` on describe the last failed attempt, for the
    retry decision and the final error.
    """

    __slots__ = (
        "attempts",
        "breaker",
        "call",
        "deadline",
        "entry_key",
        "fetched_at",
        "last_error",
        "last_status",
        "policy",
        "request_sent",
        "resendable",
        "response",
        "retry_after",
        "retryable",
        "service",
    )

    def __init__(
        self,
        call: Call,
        policy: ServicePolicy,
        service: str,
        breaker: CircuitBreaker,
        entry_key: EntryKey,
        deadline: float,
        fetched_at: float,
    ) -> None:
        self.call = call
        self.policy = policy
        self.service = service
        self.breaker = breaker
        self.entry_key = entry_key
        self.deadline = deadline
        self.fetched_at = fetched_at
        self.resendable = may_resend(call.method, call.headers, policy.retry)
        self.attempts = 0
        self.response: UpstreamResponse | None = None
        self.retry_after: float | None = None
        self.retryable = False
        self.request_sent = True
        self.last_status: int | None = None
        self.last_error = "no attempt was made"


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
        self.breakers = BreakerRegistry(
            self.clock,
            self._on_breaker_event,
            max_breakers=settings.breaker.max_breakers,
            rng=self._rng,
        )
        self.limits = ServiceLimits(self.clock)
        # Breakers whose state lives in a breaker state store; None: all local.
        self.shared_breakers: SharedBreakers | None = None
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
        store = build_fallback_store(settings, host)
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
            snapshots=guard.snapshots,
            host=settings.metrics.host,
            port=settings.metrics.port,
        )
        for name in settings.metrics.exporters:
            guard.exporters.append(host.metric_exporters.get(name)(settings, context))
        if isinstance(store, DegradingFallbackStore):
            store.on_degraded = lambda: guard._storage_degraded("fallback")
        guard.shared_breakers = build_shared_breakers(
            settings,
            host,
            clock=guard.clock,
            on_change=guard._on_breaker_event,
            on_degraded=lambda: guard._storage_degraded("breaker_state"),
        )
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
        if self.shared_breakers is not None:
            await self.shared_breakers.open()
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
        if self.shared_breakers is not None:
            await self.shared_breakers.close()

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

        Raises `CircuitRejectedError`, `UpstreamFailedError`,
        `DeadlineExceededError` or `BulkheadRejectedError` when there is
        neither. Cancellation (the client went away) stops the call at once:
        no further attempt or sleep, the breaker counts the attempt in flight
        as excluded, and the call is reported as `cancelled`.
        """
        started = self.clock.monotonic()
        policy = self.policy(call.service)
        service = call.service or origin_of(call.url)
        breaker = self.breakers.get(
            service, policy.breaker, service=call.service is not None
        )
        entry_key = EntryKey(
            call.key, call.method, call.url, credentials_hash(call.headers, call.caller)
        )
        try:
            result = await self._run(call, policy, service, breaker, entry_key)
        except BaseException as exc:
            self._finish(call, service, started, exc)
            raise
        self._finish(call, service, started, result)
        return result

    async def _run(
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
        deadline = self.clock.monotonic() + budget

        bulkhead = self.limits.bulkhead(service, policy.request)
        queue_timeout = min(policy.request.queue_timeout, budget)
        if not await bulkhead.acquire(queue_timeout):
            for exporter in self.exporters:
                exporter.bulkhead_rejected(service)
            return await self._give_up_bulkhead(
                service, breaker, entry_key, bulkhead.limit
            )

        try:
            run = _CallRun(
                call,
                policy,
                service,
                breaker,
                entry_key,
                deadline,
                fetched_at=self.clock.wall(),
            )
            return await self._attempt_all(run)
        finally:
            bulkhead.release()

    async def _attempt_all(self, run: _CallRun) -> CallResult:
        policy = run.policy
        retry_budget = self.limits.budget(run.service, policy.retry)
        backoff = self._backoff[policy.retry.backoff](policy.retry, self._rng)
        request = UpstreamRequest(
            method=run.call.method,
            url=run.call.url,
            headers=forwardable(run.call.headers),
            body=run.call.body,
            replay_safe=run.resendable,
        )

        delay = 0.0
        while True:
            # No attempt starts unless it has `min_attempt_time` after the delay.
            remaining = run.deadline - self.clock.monotonic()
            if remaining < delay + policy.request.min_attempt_time:
                return await self._give_up_deadline(run)
            if delay > 0:
                await self._sleep_before_retry(run, delay)

            try:
                permit = await self._admit(run.breaker)
            except CircuitOpenError as exc:
                return await self._give_up_open(run, exc.retry_after)
            run.attempts += 1
            if run.attempts == 1:
                retry_budget.record_call()

            result = await self._attempt(run, request, permit)
            if result is not None:
                return result

            # Decide whether another attempt may follow, and after what delay.
            stop = self._stop_reason(run)
            if stop is not None:
                return await self._give_up_failed(run, stop)
            delay = backoff.next_delay(run.attempts)
            if run.retry_after is not None:
                earliest = self.clock.monotonic() + run.retry_after
                if earliest + policy.request.min_attempt_time > run.deadline:
                    return await self._give_up_busy(run, run.retry_after)
                delay = max(delay, min(run.retry_after, policy.retry.max_retry_after))
            remaining = run.deadline - self.clock.monotonic()
            if remaining < delay + policy.request.min_attempt_time:
                return await self._give_up_deadline(run)
            if not retry_budget.try_spend():
                for exporter in self.exporters:
                    exporter.retry_refused(run.service)
                return await self._give_up_failed(
                    run, f"retry budget of {run.service!r} exhausted"
                )

    async def _attempt(
        self, run: _CallRun, request: UpstreamRequest, permit: Permit
    ) -> CallResult | None:
        """Send one attempt; return a deliverable result, or None after a failure.

        A failure leaves its details in `run` for the retry decision.
        """
        remaining = run.deadline - self.clock.monotonic()
        configured = run.policy.request.timeout
        timeout = min(configured, remaining)
        started = self.clock.monotonic()
        run.response = None
        run.retry_after = None
        try:
            response = await self.transport.send(request, timeout)
        except PoolTimeoutError as exc:
            await self._record(run.breaker, permit, Outcome.EXCLUDED, duration=timeout)
            for exporter in self.exporters:
                exporter.pool_timed_out(run.service)
            return await self._give_up_pool(run, exc)
        except TransportError as exc:
            duration = self.clock.monotonic() - started
            self._count_retry_sent(run)
            if isinstance(exc, UpstreamTimeoutError) and timeout < configured:
                # The call's deadline cut this attempt short, so the timeout
                # is no evidence about the upstream's health.
                await self._record(
                    run.breaker, permit, Outcome.EXCLUDED, duration=duration
                )
                return await self._give_up_deadline(run)
            outcome = run.breaker.classifier.error(exc)
            await self._record(run.breaker, permit, outcome, duration=duration)
            self._note_error(run, exc)
            return None
        except BaseException:
            duration = self.clock.monotonic() - started
            self._count_retry_sent(run)
            await self._record(run.breaker, permit, Outcome.EXCLUDED, duration=duration)
            raise

        duration = self.clock.monotonic() - started
        self._count_retry_sent(run)
        retry_after = self._retry_after_of(response)
        outcome = run.breaker.classifier.status(response.status_code)
        failed = outcome is Outcome.FAILURE
        await self._record(
            run.breaker, permit, outcome, duration=duration, retry_after=retry_after
        )
        retryable = response.status_code in run.policy.retry.on_status
        if not failed and not retryable:
            if 200 <= response.status_code < 300:
                await self._store(run.entry_key, response, run.fetched_at)
            return self._upstream_result(run, response)

        run.response = response
        run.retry_after = retry_after
        run.retryable = retryable
        run.request_sent = True
        run.last_status = response.status_code
        run.last_error = f"upstream answered {response.status_code}"
        if failed:
            for exporter in self.exporters:
                exporter.attempt_failed(run.service, str(response.status_code))
        return None

    def _note_error(self, run: _CallRun, error: TransportError) -> None:
        run.retryable = error_kind(error) in run.policy.retry.on_errors
        run.request_sent = error.request_sent
        run.last_status = None
        run.last_error = f"{type(error).__name__}: {error}"
        for exporter in self.exporters:
            exporter.attempt_failed(run.service, type(error).__name__)

    def _stop_reason(self, run: _CallRun) -> str | None:
        """Return why the failed attempt in `run` is not retried, or None."""
        if not run.retryable:
            return "not retryable"
        if run.attempts > run.policy.retry.max_retries:
            return "retries exhausted"
        if run.request_sent and not run.resendable:
            return "the method is not idempotent and the request may have arrived"
        if self._state(run.breaker) is BreakerState.OPEN:
            return "the circuit opened"
        return None

    def _retry_after_of(self, response: UpstreamResponse) -> float | None:
        """Return the valid `Retry-After` wait of a 429 or 503 response, if any."""
        if response.status_code not in RETRY_AFTER_STATUSES:
            return None
        return parse_retry_after(response.header("retry-after"), self.clock.wall())

    async def _sleep_before_retry(self, run: _CallRun, delay: float) -> None:
        if self._events and self.plugins is not None:
            reason = str(run.last_status) if run.last_status else run.last_error
            self.plugins.emit_retry_scheduled(
                RetryScheduled(run.service, run.call.key, run.attempts, delay, reason)
            )
        await self.clock.sleep(delay)

    def _count_retry_sent(self, run: _CallRun) -> None:
        if run.attempts > 1:
            for exporter in self.exporters:
                exporter.retry_sent(run.service)

    def _upstream_result(self, run: _CallRun, response: UpstreamResponse) -> CallResult:
        return CallResult(
            source="upstream",
            status_code=response.status_code,
            headers=response.headers,
            body=response.body,
            attempts=run.attempts,
            service=run.service,
            state=self._state(run.breaker),
        )

    async def _give_up_failed(self, run: _CallRun, reason: str) -> CallResult:
        """End a call whose last attempt failed: fallback, or the last response.

        A last response whose status is retryable but no failure (a status
        added to `retry.on_status`) is delivered as it is.
        """
        response = run.response
        if response is not None and (
            run.breaker.classifier.status(response.status_code) is not Outcome.FAILURE
        ):
            return self._upstream_result(run, response)

        return await self._fallback_or_raise(
            run,
            "upstream_failed",
            UpstreamFailedError(
                f"upstream failed after {run.attempts} attempt(s), {reason}:"
                f" {run.last_error}",
                service=run.service,
                attempts=run.attempts,
                state=self._state(run.breaker).value,
                upstream_status=run.last_status,
            ),
        )

    async def _give_up_busy(self, run: _CallRun, retry_after: float) -> CallResult:
        return await self._fallback_or_raise(
            run,
            "upstream_failed",
            UpstreamBusyError(
                f"upstream responded {run.last_status} with Retry-After"
                f" {retry_after:g}s, which ends past the call's deadline",
                service=run.service,
                attempts=run.attempts,
                state=self._state(run.breaker).value,
                upstream_status=run.last_status,
                retry_after=retry_after,
            ),
        )

    async def _give_up_pool(self, run: _CallRun, error: PoolTimeoutError) -> CallResult:
        return await self._fallback_or_raise(
            run,
            "pool_timeout",
            BulkheadRejectedError(
                f"{error}; the upstream was not contacted",
                service=run.service,
                attempts=run.attempts,
                state=self._state(run.breaker).value,
                limit=self.settings.transport.max_connections,
            ),
        )

    async def _give_up_bulkhead(
        self, service: str, breaker: CircuitBreaker, entry_key: EntryKey, limit: int
    ) -> CallResult:
        fallback = await self._fallback(service, entry_key, 0, breaker, "bulkhead")
        if fallback is not None:
            return fallback
        raise BulkheadRejectedError(
            f"service {service!r} already runs request.max_concurrency = {limit}"
            " calls; the upstream was not contacted",
            service=service,
            attempts=0,
            state=self._state(breaker).value,
            limit=limit,
        )

    async def _admit(self, breaker: CircuitBreaker) -> Permit:
        """Ask `breaker` to admit one attempt; raises `CircuitOpenError`.

        Every breaker admission of the guard goes through here, so a shared
        breaker backend can replace the local one in one place.
        """
        shared = self.shared_breakers
        if shared is not None and shared.covers(breaker.name):
            return await shared.admit(breaker)
        return breaker.acquire()

    def snapshots(self) -> list[BreakerSnapshot]:
        """Return every breaker's snapshot, with the shared state where kept.

        The metrics exporter reads this at scrape time. A shared breaker shows
        the state this process last saw in the store; `snapshot` reads the
        store itself.
        """
        views = []
        for snapshot in self.breakers.snapshots():
            breaker = self.breakers.find(snapshot.name)
            if breaker is not None:
                snapshot = replace(snapshot, state=self._state(breaker))
            views.append(snapshot)
        return views

    async def refresh_shared_states(self) -> None:
        """Read the state of every shared breaker of this process from the store.

        Another process can open a shared breaker while this one sends no
        calls through it. Without a refresh, this process's responses and
        state gauge would show the state it saw last.
        """
        shared = self.shared_breakers
        if shared is None:
            return
        for name in [snapshot.name for snapshot in self.breakers.snapshots()]:
            breaker = self.breakers.find(name)
            if breaker is not None and shared.covers(name):
                await shared.read(breaker)

    async def snapshot(self, breaker: CircuitBreaker) -> BreakerSnapshot:
        """Return the breaker's snapshot, read from the store if it keeps it."""
        snapshot = breaker.snapshot()
        shared = self.shared_breakers
        if shared is None or not shared.covers(breaker.name):
            return snapshot
        record = await shared.read(breaker)
        if record is None:
            return snapshot
        return replace(
            snapshot,
            state=BreakerState(record.state.value),
            consecutive_failures=record.failures,
            half_open_in_flight=record.probes_in_flight,
            half_open_successes=record.probe_successes,
            open_remaining=record.open_remaining,
        )

    def _state(self, breaker: CircuitBreaker) -> BreakerState:
        """Return the breaker's state: the shared one if the store keeps it.

        A shared breaker's state is the one this process last saw in the
        store, so retries stop when another replica's failures opened it.
        """
        shared = self.shared_breakers
        if shared is not None and shared.covers(breaker.name):
            return shared.observed_state(breaker)
        return breaker.state

    async def _record(
        self,
        breaker: CircuitBreaker,
        permit: Permit,
        outcome: Outcome,
        *,
        duration: float,
        retry_after: float | None = None,
    ) -> None:
        """Report the outcome of an attempt admitted by `_admit`.

        `duration` is the attempt's time in seconds. `retry_after` is the
        upstream's valid `Retry-After` in seconds, if it sent one.
        """
        if isinstance(permit, SharedPermit) and self.shared_breakers is not None:
            await self.shared_breakers.record(breaker, permit, outcome)
            return
        breaker.record(permit, outcome, duration=duration, retry_after=retry_after)

    def _storage_degraded(self, role: str) -> None:
        for exporter in self.exporters:
            exporter.storage_degraded(role)

    async def _give_up_open(self, run: _CallRun, retry_after: float) -> CallResult:
        state = self._state(run.breaker).value
        return await self._fallback_or_raise(
            run,
            "circuit_open",
            CircuitRejectedError(
                f"circuit {run.service!r} is {state} and no fallback is stored",
                service=run.service,
                attempts=run.attempts,
                state=state,
                retry_after=retry_after,
            ),
        )

    async def _give_up_deadline(self, run: _CallRun) -> CallResult:
        for exporter in self.exporters:
            exporter.deadline_expired(run.service)
        return await self._fallback_or_raise(
            run,
            "deadline",
            DeadlineExceededError(
                f"deadline passed after {run.attempts} attempt(s)",
                service=run.service,
                attempts=run.attempts,
                state=self._state(run.breaker).value,
            ),
        )

    async def _fallback_or_raise(
        self, run: _CallRun, reason: str, error: CallFailedError
    ) -> CallResult:
        """Return the stored fallback for `run`, or raise `error` if there is none.

        The state in `error` is read before the store lookup, as the caller
        saw it when it gave up.
        """
        fallback = await self._fallback(
            run.service, run.entry_key, run.attempts, run.breaker, reason
        )
        if fallback is not None:
            return fallback
        raise error

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
            state=self._state(breaker),
            stored_at=stored.stored_at,
            age_seconds=age,
            fallback_reason=reason,
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
            outcome = "success"
            if result.fallback_reason is not None:
                outcome = _FALLBACK_OUTCOMES.get(result.fallback_reason, "failure")
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

    def _on_breaker_event(self, event: BreakerEvent) -> None:
        """Forward a breaker event to the log, the exporters and the plugins."""
        if isinstance(event, StateChange):
            logger.warning(
                "breaker_state_changed",
                extra={
                    "service": event.name,
                    "old_state": event.old.value,
                    "new_state": event.new.value,
                    "reason": event.reason,
                },
            )
            for exporter in self.exporters:
                exporter.state_changed(event)
            if self.plugins is not None:
                self.plugins.emit_state_change(event)
        elif not self._events or self.plugins is None:
            return
        elif isinstance(event, CallRejected):
            self.plugins.emit_call_rejected(event)
        else:
            self.plugins.emit_call_recorded(event)


def _outcome_of(error: object) -> str:
    if isinstance(error, CircuitRejectedError | BulkheadRejectedError):
        return "rejected"
    if isinstance(error, DeadlineExceededError):
        return "deadline"
    if isinstance(error, UpstreamFailedError):
        return "failure"
    if isinstance(error, Exception):
        return "error"
    return "cancelled"
