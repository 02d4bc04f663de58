"""Events delivered to plugins through the event hooks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """A failed attempt will be retried after `delay` seconds."""

    service: str
    key: str
    attempt: int
    """The attempt that failed, 1 for the first."""
    delay: float
    reason: str


@dataclass(frozen=True, slots=True)
class FallbackServed:
    """A call was answered from the fallback store."""

    service: str
    key: str
    status_code: int
    age_seconds: float
    reason: str
    """Why the upstream was not used: `upstream_failed`, `circuit_open`, `deadline`."""


@dataclass(frozen=True, slots=True)
class CallFinished:
    """A guarded call ended, whatever the result."""

    service: str
    key: str
    source: str
    """`upstream`, `fallback` or `none`."""
    outcome: str
    """`success`, `failure`, `rejected`, `deadline` or `cancelled`."""
    status_code: int | None
    attempts: int
    duration: float
