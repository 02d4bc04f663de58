"""Request and response bodies of the REST API."""

from __future__ import annotations

from typing import Annotated

import msgspec


class ExecuteRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of `POST /execute`."""

    key: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
    method: Annotated[
        str, msgspec.Meta(pattern=r"^[A-Za-z]{1,16}$", description="HTTP method")
    ] = "GET"
    headers: dict[str, str] = {}
    body: str | None = None
    service: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0, le=86400)] | None = None


class ExecuteResponse(msgspec.Struct, omit_defaults=True):
    """The JSON envelope around a delivered response."""

    result: str
    source: str
    status_code: int
    attempts: int
    service: str
    state: str
    stored_at: str | None = None
    age_seconds: float | None = None


class BreakerView(msgspec.Struct):
    """One breaker as `GET /breakers` shows it."""

    service: str
    state: str
    consecutive_failures: int
    half_open_in_flight: int
    open_remaining_seconds: float
    open_until: str | None
    half_open_successes: int = 0
    window_calls: int = 0
    window_failures: int = 0
    window_slow_calls: int = 0
    trips: int = 0
    """Openings since the breaker last closed; the next open period grows with it."""
    shadow_trips: int = 0
    """Trips a `metrics_only` breaker reported without opening."""
    manual: bool = False
    """True in a manual state (forced_open, forced_closed, disabled, metrics_only)."""
