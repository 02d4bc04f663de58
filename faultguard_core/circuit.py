"""The breaker as a decorator and an async context manager for Python code.

```python
breaker = CircuitBreaker("billing", max_failures=3, open_duration=10)
billing = Circuit(breaker)

@billing
async def fetch(user_id: int) -> dict: ...

async with billing as call:
    response = await client.get(url)
    call.record_status(response.status_code)
```

Both forms share one rule set. A rejected call raises `CircuitOpenError`
before the body runs; its `retry_after` is the time until half-open. An
exception leaving the body is classified and re-raised unchanged: a
cancellation is excluded, an exception in `excluded_exceptions` is excluded,
one in `success_exceptions` counts as a success, one in `failure_exceptions`
(default: every `Exception`) is a failure, and any other `BaseException` is
excluded. A body that ends normally is a success unless `call.record_status`,
`call.fail()` or `call.exclude()` said otherwise, or, for the decorator,
`is_failure(result)` returns True.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import anyio

from faultguard_core.breaker import CircuitBreaker, Outcome, Permit

P = ParamSpec("P")
R = TypeVar("R")

ExceptionTypes = tuple[type[BaseException], ...]

# The calls in progress per task, innermost last, so one `Circuit` serves
# concurrent tasks and nested `async with` blocks.
_ACTIVE: ContextVar[tuple[tuple[Circuit, CircuitCall], ...]] = ContextVar(
    "faultguard_circuit_calls", default=()
)


class CircuitCall:
    """One admitted call inside `async with circuit as call`.

    The body may set the outcome explicitly; the last setting wins, and an
    exception leaving the body overrides it.
    """

    def __init__(self, breaker: CircuitBreaker, permit: Permit) -> None:
        self.breaker = breaker
        self.permit = permit
        self.outcome: Outcome | None = None
        self.retry_after: float | None = None

    def fail(self, *, retry_after: float | None = None) -> None:
        """Count this call as a failure, with the upstream's Retry-After if any."""
        self.outcome = Outcome.FAILURE
        self.retry_after = retry_after

    def exclude(self) -> None:
        """Count this call as neither success nor failure."""
        self.outcome = Outcome.EXCLUDED

    def succeed(self) -> None:
        """Count this call as a success."""
        self.outcome = Outcome.SUCCESS

    def record_status(
        self, status_code: int, *, retry_after: float | None = None
    ) -> Outcome:
        """Classify an HTTP status with the breaker's status lists and return it."""
        self.outcome = self.breaker.classifier.status(status_code)
        self.retry_after = retry_after
        return self.outcome


class Circuit:
    """Runs async code through `breaker`; usable as decorator and context manager.

    One instance is safe to share between tasks: each `async with` holds its
    own permit.
    """

    def __init__(
        self,
        breaker: CircuitBreaker,
        *,
        failure_exceptions: ExceptionTypes = (Exception,),
        success_exceptions: ExceptionTypes = (),
        excluded_exceptions: ExceptionTypes = (),
        is_failure: Callable[[Any], bool] | None = None,
    ) -> None:
        self.breaker = breaker
        self.failure_exceptions = failure_exceptions
        self.success_exceptions = success_exceptions
        self.excluded_exceptions = excluded_exceptions
        self.is_failure = is_failure

    async def __aenter__(self) -> CircuitCall:
        permit = self.breaker.acquire()
        call = CircuitCall(self.breaker, permit)
        _ACTIVE.set((*_ACTIVE.get(), (self, call)))
        return call

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        call = self._pop()
        outcome = call.outcome or Outcome.SUCCESS
        if exc is not None:
            outcome = self.classify_exception(exc)
        retry_after = call.retry_after if outcome is Outcome.FAILURE else None
        self.breaker.record(call.permit, outcome, retry_after=retry_after)

    def _pop(self) -> CircuitCall:
        active = _ACTIVE.get()
        for index in range(len(active) - 1, -1, -1):
            owner, call = active[index]
            if owner is self:
                _ACTIVE.set(active[:index] + active[index + 1 :])
                return call
        raise RuntimeError("Circuit.__aexit__ called without a matching __aenter__")

    def classify_exception(self, exc: BaseException) -> Outcome:
        """Return the outcome of a call that raised `exc` (see the module doc)."""
        if isinstance(exc, asyncio.CancelledError | anyio.get_cancelled_exc_class()):
            return Outcome.EXCLUDED
        if isinstance(exc, self.excluded_exceptions):
            return Outcome.EXCLUDED
        if isinstance(exc, self.success_exceptions):
            return Outcome.SUCCESS
        if isinstance(exc, self.failure_exceptions):
            return Outcome.FAILURE
        return Outcome.EXCLUDED

    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        """Wrap an async function so every call goes through the breaker."""

        @functools.wraps(func)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            async with self as call:
                result = await func(*args, **kwargs)
                if self.is_failure is not None and self.is_failure(result):
                    call.fail()
                return result

        return guarded


def circuit(
    breaker: CircuitBreaker,
    *,
    failure_exceptions: ExceptionTypes = (Exception,),
    success_exceptions: ExceptionTypes = (),
    excluded_exceptions: ExceptionTypes = (),
    is_failure: Callable[[Any], bool] | None = None,
) -> Circuit:
    """Return a `Circuit` over `breaker`: `@circuit(breaker)` or `async with`."""
    return Circuit(
        breaker,
        failure_exceptions=failure_exceptions,
        success_exceptions=success_exceptions,
        excluded_exceptions=excluded_exceptions,
        is_failure=is_failure,
    )
