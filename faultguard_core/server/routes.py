"""Route handlers of the REST API."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

import anyio
import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from faultguard_core.breaker import BreakerSnapshot
from faultguard_core.bulkhead import BulkheadRejectedError
from faultguard_core.errors import (
    CircuitRejectedError,
    ConfigError,
    DeadlineExceededError,
    StorageError,
    TargetForbiddenError,
    UpstreamFailedError,
)
from faultguard_core.guard import Call, CallResult, Guard
from faultguard_core.retry import UpstreamBusyError
from faultguard_core.security import InvalidTargetError, check_target, parse_target
from faultguard_core.server.problems import problem
from faultguard_core.server.schemas import BreakerView, ExecuteRequest, ExecuteResponse
from faultguard_core.settings import ServiceSettings

CONCURRENCY_LIMIT_PROBLEM = "urn:faultguard:problem:concurrency-limit"
"""Problem type of a call rejected by the service's bulkhead or a full pool."""

CLIENT_CLOSED_REQUEST = 499
"""Status logged for a call whose client disconnected (nginx's convention)."""

_BODYLESS_STATUSES = frozenset({204, 304})
"""Upstream statuses delivered without the JSON envelope (RFC 9110 6.4.1)."""

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# A header value may contain visible ASCII, spaces and tabs. Other bytes either
# break the HTTP framing (CR, LF, NUL, other controls) or cannot be encoded.
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e]")


def _rfc3339(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, UTC).isoformat().replace("+00:00", "Z")


def _envelope(result: CallResult) -> Response[bytes]:
    envelope = ExecuteResponse(
        result=result.body.decode("utf-8", errors="replace"),
        source=result.source,
        status_code=result.status_code,
        attempts=result.attempts,
        service=result.service,
        state=result.state.value,
    )
    if result.stored_at is not None:
        envelope.stored_at = _rfc3339(result.stored_at)
        envelope.age_seconds = round(result.age_seconds or 0.0, 3)
    headers = {
        "X-Faultguard-Source": result.source,
        "X-Faultguard-Attempts": str(result.attempts),
        "X-Faultguard-State": result.state.value,
    }
    if result.status_code in _BODYLESS_STATUSES:
        # HTTP forbids a body with these statuses, so the facts travel in
        # the X-Faultguard-* headers only.
        return Response(content=b"", status_code=result.status_code, headers=headers)
    return Response(
        content=msgspec.json.encode(envelope),
        status_code=result.status_code,
        media_type="application/json",
        headers=headers,
    )


def _invalid_headers(headers: dict[str, str]) -> str | None:
    for name, value in headers.items():
        if not _TOKEN.match(name):
            return f"invalid header name {name!r}"
        if _BAD_VALUE.search(value):
            return (
                f"invalid value of header {name!r}: only visible ASCII characters,"
                " spaces and tabs are allowed"
            )
    return None


def _service_url(service: ServiceSettings | None, url: str) -> str:
    """Prefix a path-only `url` ("/users/42") with the service's base URL."""
    if service is None or not service.url:
        return url
    if url.startswith("/") and not url.startswith("//"):
        return service.url.rstrip("/") + url
    return url


def _allowed_hosts(service: ServiceSettings) -> list[str]:
    """Return the hosts a service may call; empty means any host."""
    if service.allowed_hosts:
        return list(service.allowed_hosts)
    if service.url:
        return [parse_target(service.url).host]
    return []


@post("/execute", status_code=200, summary="Call an upstream URL through the guard")
async def execute(
    request: Request[Any, Any, Any], data: JSONBody[ExecuteRequest], state: State
) -> Response[bytes]:
    """Call `url` through the breaker, retries and fallback store.

    The response mirrors the delivered status and wraps the body in a JSON
    envelope; errors are RFC 9457 problem documents.
    """
    guard: Guard = state.guard
    settings = guard.settings

    header_error = _invalid_headers(data.headers)
    if header_error is not None:
        return problem(400, header_error)
    if data.method.upper() == "CONNECT":
        return problem(
            400, "method CONNECT is not supported: it opens a tunnel, not a request"
        )
    if data.service is not None and data.service not in settings.services:
        return problem(
            400, f"unknown service {data.service!r}; configure it under [services]"
        )
    service = settings.services.get(data.service) if data.service else None
    url = _service_url(service, data.url)
    try:
        target = await check_target(url, state.blocked_networks, state.resolver)
    except InvalidTargetError as exc:
        return problem(400, str(exc))
    except TargetForbiddenError as exc:
        return problem(403, str(exc))
    if service is not None:
        allowed = _allowed_hosts(service)
        if allowed and target.host not in allowed:
            return problem(
                403,
                f"host {target.host!r} is not allowed for service {data.service!r}"
                " (services.<name>.allowed_hosts, or the host of services.<name>.url)",
            )

    call = Call(
        key=data.key,
        url=url,
        method=data.method.upper(),
        headers=tuple(data.headers.items()),
        body=data.body.encode() if data.body is not None else None,
        service=data.service,
        timeout=data.timeout,
    )
    try:
        result = await _execute_until_disconnect(request, guard, call)
    except BulkheadRejectedError as exc:
        return problem(
            503,
            str(exc),
            problem_type=CONCURRENCY_LIMIT_PROBLEM,
            title="Concurrency limit reached",
            headers={"X-Faultguard-State": exc.state},
            service=exc.service,
            state=exc.state,
            attempts=exc.attempts,
            limit=exc.limit,
        )
    except CircuitRejectedError as exc:
        rejected_headers = {"X-Faultguard-State": exc.state}
        # A forced-open breaker has no time until half-open (infinite).
        if math.isfinite(exc.retry_after):
            retry_after = max(1, math.ceil(exc.retry_after))
            rejected_headers["Retry-After"] = str(retry_after)
        return problem(
            503,
            str(exc),
            headers=rejected_headers,
            service=exc.service,
            state=exc.state,
            attempts=exc.attempts,
        )
    except UpstreamFailedError as exc:
        failed_headers = {"X-Faultguard-State": exc.state}
        if isinstance(exc, UpstreamBusyError):
            failed_headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return problem(
            502,
            str(exc),
            headers=failed_headers,
            service=exc.service,
            state=exc.state,
            attempts=exc.attempts,
            upstream_status=exc.upstream_status,
        )
    except DeadlineExceededError as exc:
        return problem(
            504,
            str(exc),
            headers={"X-Faultguard-State": exc.state},
            service=exc.service,
            state=exc.state,
            attempts=exc.attempts,
        )
    except ConfigError as exc:
        return problem(400, str(exc))
    if result is None:
        # Nobody reads this response: the client has already gone away.
        return problem(CLIENT_CLOSED_REQUEST, "the client closed the connection")
    return _envelope(result)


async def _execute_until_disconnect(
    request: Request[Any, Any, Any], guard: Guard, call: Call
) -> CallResult | None:
    """Run `call`, cancelling it when the client disconnects.

    Returns None if the client disconnected first. uvicorn does not cancel a
    handler whose client went away, so a watcher task waits on the ASGI
    receive channel, which yields `http.disconnect` once the request body has
    been read and the connection closes.
    """
    result: CallResult | None = None
    failure: Exception | None = None
    async with anyio.create_task_group() as group:

        async def watch_disconnect() -> None:
            while True:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    group.cancel_scope.cancel()
                    return

        group.start_soon(watch_disconnect)
        try:
            result = await guard.execute(call)
        except Exception as exc:
            # Re-raised outside the task group, so no ExceptionGroup wraps it.
            failure = exc
        finally:
            group.cancel_scope.cancel()

    if failure is not None:
        raise failure
    return result


@get("/health", summary="Liveness")
async def health() -> dict[str, str]:
    """Return 200 while the process serves requests."""
    return {"status": "ok"}


@get("/ready", summary="Readiness: storage and plugins usable")
async def ready(state: State) -> Response[bytes]:
    """Return 200 when the fallback store responds, else 503 with the reason."""
    guard: Guard = state.guard
    try:
        await guard.store.check()
    except StorageError as exc:
        return problem(503, f"storage not ready: {exc}")
    body = {"status": "ready", "storage": guard.settings.storage.backend}
    return Response(content=msgspec.json.encode(body), media_type="application/json")


def view_of(guard: Guard, snapshot: BreakerSnapshot) -> BreakerView:
    """Return the API view of a breaker snapshot."""
    open_until = None
    if snapshot.open_remaining > 0:
        open_until = _rfc3339(guard.clock.wall() + snapshot.open_remaining)
    return BreakerView(
        service=snapshot.name,
        state=snapshot.state.value,
        consecutive_failures=snapshot.consecutive_failures,
        half_open_in_flight=snapshot.half_open_in_flight,
        open_remaining_seconds=round(snapshot.open_remaining, 3),
        open_until=open_until,
        half_open_successes=snapshot.half_open_successes,
        window_calls=snapshot.window_calls,
        window_failures=snapshot.window_failures,
        window_slow_calls=snapshot.window_slow_calls,
        trips=snapshot.trips,
        shadow_trips=snapshot.shadow_trips,
        manual=snapshot.state.manual,
    )


async def _view(guard: Guard, name: str) -> BreakerView | None:
    breaker = guard.breakers.find(name)
    if breaker is None:
        return None
    return view_of(guard, await guard.snapshot(breaker))


@get("/breakers", summary="Every breaker's state and counts")
async def list_breakers(state: State) -> list[BreakerView]:
    """Return the breakers created so far, named by service or origin."""
    guard: Guard = state.guard
    views = []
    for name in [snapshot.name for snapshot in guard.breakers.snapshots()]:
        view = await _view(guard, name)
        if view is not None:
            views.append(view)
    return views


@get("/breakers/{service:str}", summary="One breaker's state and counts")
async def get_breaker(service: FromPath[str], state: State) -> Response[bytes]:
    """Return one breaker, or 404 if no call has created it yet."""
    view = await _view(state.guard, service)
    if view is None:
        return problem(404, f"no breaker named {service!r}")
    return Response(content=msgspec.json.encode(view), media_type="application/json")
