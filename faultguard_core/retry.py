"""Retry rules: which failed attempts are retried, and per-service limits.

A failed attempt is retried only when all of these hold:

- its status is in `retry.on_status`, or its error kind is in `retry.on_errors`;
- the request may be sent again: the method is idempotent, the caller sent an
  `Idempotency-Key` header, the service set `retry.retry_non_idempotent`, or
  the transport reports that nothing reached the upstream (a refused connection);
- the guard's deadline, the breaker and the service's retry budget allow it.

The guard applies the last point; this module holds the first two and the
registry of per-service retry budgets and bulkheads.
"""

from __future__ import annotations

from collections.abc import Iterable

from faultguard_core._headers import IDEMPOTENT_METHODS, has_header
from faultguard_core.bulkhead import Bulkhead
from faultguard_core.clock import Clock
from faultguard_core.errors import UpstreamFailedError
from faultguard_core.retry_budget import RetryBudget
from faultguard_core.settings import ErrorKind, RequestSettings, RetrySettings
from faultguard_core.transport.base import (
    ResponseTooLargeError,
    TransportError,
    UpstreamConnectError,
    UpstreamTimeoutError,
)

IDEMPOTENCY_HEADER = "idempotency-key"


def error_kind(error: TransportError) -> ErrorKind:
    """Return the `retry.on_errors` kind of a transport error.

    Errors of unknown `TransportError` subclasses (from plugin transports)
    count as `protocol`.
    """
    if isinstance(error, UpstreamConnectError):
        return "connect"
    if isinstance(error, UpstreamTimeoutError):
        return "timeout"
    if isinstance(error, ResponseTooLargeError):
        return "response_too_large"
    return "protocol"


def may_resend(
    method: str, headers: Iterable[tuple[str, str]], settings: RetrySettings
) -> bool:
    """Return True if a request that may have reached the upstream can be resent.

    True for idempotent methods (RFC 9110, section 9.2.2), for requests with
    an `Idempotency-Key` header (every attempt carries the same key), and for
    every method when the service sets `retry.retry_non_idempotent`.
    """
    if method.upper() in IDEMPOTENT_METHODS:
        return True
    if settings.retry_non_idempotent:
        return True
    return has_header(headers, IDEMPOTENCY_HEADER)


class UpstreamBusyError(UpstreamFailedError):
    """The upstream asked for a `Retry-After` wait that ends past the deadline.

    `retry_after` is the wait in seconds that the upstream asked for.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str,
        attempts: int,
        state: str,
        upstream_status: int | None,
        retry_after: float,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            message,
            service=service,
            attempts=attempts,
            state=state,
            upstream_status=upstream_status,
        )


class ServiceLimits:
    """The retry budget and the bulkhead of each service, created on first use.

    A service whose settings change (after a reload) gets a new budget and
    bulkhead. Calls that still hold a slot of the old bulkhead release it there.
    """

    # NOTE: like the breaker registry, this grows with every distinct origin
    # of calls that name no service.

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._budgets: dict[str, tuple[tuple[float, float, float], RetryBudget]] = {}
        self._bulkheads: dict[str, Bulkhead] = {}

    def budget(self, service: str, settings: RetrySettings) -> RetryBudget:
        """Return the retry budget of `service` under `settings`."""
        params = (
            settings.budget_ratio,
            settings.budget_min_per_second,
            settings.budget_window,
        )
        known = self._budgets.get(service)
        if known is not None and known[0] == params:
            return known[1]

        budget = RetryBudget(
            self._clock,
            ratio=settings.budget_ratio,
            min_per_second=settings.budget_min_per_second,
            window=settings.budget_window,
        )
        self._budgets[service] = (params, budget)
        return budget

    def bulkhead(self, service: str, settings: RequestSettings) -> Bulkhead:
        """Return the bulkhead of `service` with `settings.max_concurrency` slots."""
        bulkhead = self._bulkheads.get(service)
        if bulkhead is None or bulkhead.limit != settings.max_concurrency:
            bulkhead = Bulkhead(settings.max_concurrency)
            self._bulkheads[service] = bulkhead
        return bulkhead
