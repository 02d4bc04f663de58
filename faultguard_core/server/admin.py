"""Admin endpoints: manual breaker control and configuration reload.

With `security.admin_token` set, every admin request must send
`Authorization: Bearer <token>`; a missing or wrong token gets 401 problem
JSON. Without a token, admin requests are accepted only from loopback
addresses (127.0.0.0/8 and ::1), so an unprotected server never takes
admin requests from the network.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.params import FromPath

from faultguard_core.breaker import CircuitBreaker
from faultguard_core.errors import ConfigError
from faultguard_core.guard import Guard
from faultguard_core.reload import Reloader
from faultguard_core.security import parse_networks
from faultguard_core.server.problems import problem
from faultguard_core.server.schemas import BreakerView

logger = logging.getLogger("faultguard")

_ORIGIN = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]+):[0-9]{1,5}$")
"""A per-origin breaker name, `host:port` or `[v6]:port`."""


def _bearer_token(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def authorize(request: Request[Any, Any, Any], guard: Guard) -> Response[bytes] | None:
    """Return a 401 or 403 problem unless the request may use the admin API."""
    expected = guard.settings.security.admin_token
    if expected is None:
        client = request.client.host if request.client else None
        if _is_loopback(client):
            return None
        return problem(
            403,
            "admin endpoints accept requests only from loopback addresses while"
            " security.admin_token is unset; set security.admin_token to use"
            " them from other hosts",
            title="Admin access forbidden",
        )

    token = _bearer_token(request)
    if token is not None and hmac.compare_digest(
        token.encode("utf-8"), expected.encode("utf-8")
    ):
        return None
    logger.warning(
        "admin_request_unauthorized",
        extra={"path": request.url.path, "token_sent": token is not None},
    )
    return problem(
        401,
        "missing or invalid admin token: send Authorization: Bearer <token>"
        " with the value of security.admin_token",
        headers={"WWW-Authenticate": 'Bearer realm="faultguard-admin"'},
    )


def breaker_view(guard: Guard, breaker: CircuitBreaker) -> BreakerView:
    """Return the API view of one breaker."""
    from faultguard_core.server.routes import view_of

    return view_of(guard, breaker.snapshot())


def _json(view: BreakerView) -> Response[bytes]:
    return Response(content=msgspec.json.encode(view), media_type="application/json")


def _breaker_for_admin(guard: Guard, name: str) -> CircuitBreaker | None:
    """Return the breaker `name`, creating it for a configured service or an origin.

    Creating one lets an operator force a breaker open before the first
    call to that service or origin.
    """
    existing = guard.breakers.find(name)
    if existing is not None:
        return existing
    if name in guard.settings.services:
        policy = guard.settings.policy_for(name)
        return guard.breakers.get(name, policy.breaker, service=True)
    if _ORIGIN.match(name) and 1 <= int(name.rsplit(":", 1)[1]) <= 65535:
        return guard.breakers.get(name, guard.settings.breaker)
    return None


async def _control(
    request: Request[Any, Any, Any], state: State, service: str, action: str
) -> Response[bytes]:
    guard: Guard = state.guard
    denied = authorize(request, guard)
    if denied is not None:
        return denied

    breaker = _breaker_for_admin(guard, service)
    if breaker is None:
        return problem(
            404,
            f"no breaker named {service!r}: name a configured service or an"
            " origin as host:port",
        )
    if guard.breakers.find(service) is not breaker:
        # The registry was full of breakers it may not evict, so it handed out
        # a breaker that it does not keep; a forced state on it would be lost.
        return problem(
            503,
            f"breaker registry is full (breaker.max_breakers ="
            f" {guard.settings.breaker.max_breakers}) and none of its breakers"
            f" may be evicted, so {service!r} cannot be controlled; raise"
            " breaker.max_breakers or reset breakers that are open",
        )
    actions = {
        "open": breaker.force_open,
        "close": breaker.force_close,
        "reset": breaker.reset,
        "disable": breaker.disable,
        "metrics-only": breaker.enable_metrics_only,
    }
    actions[action]()
    logger.warning(
        "breaker_manual_action", extra={"service": service, "action": action}
    )
    return _json(breaker_view(guard, breaker))


@post("/breakers/{service:str}/open", summary="Force a breaker open", status_code=200)
async def force_open(
    request: Request[Any, Any, Any], service: FromPath[str], state: State
) -> Response[bytes]:
    """Reject every call of the breaker until it is reset (state `forced_open`)."""
    return await _control(request, state, service, "open")


@post(
    "/breakers/{service:str}/close", summary="Force a breaker closed", status_code=200
)
async def force_close(
    request: Request[Any, Any, Any], service: FromPath[str], state: State
) -> Response[bytes]:
    """Admit every call and keep counting, never opening (state `forced_closed`)."""
    return await _control(request, state, service, "close")


@post("/breakers/{service:str}/reset", summary="Reset a breaker", status_code=200)
async def reset(
    request: Request[Any, Any, Any], service: FromPath[str], state: State
) -> Response[bytes]:
    """Return the breaker to `closed` with empty counts and the first open period."""
    return await _control(request, state, service, "reset")


@post("/breakers/{service:str}/disable", summary="Disable a breaker", status_code=200)
async def disable(
    request: Request[Any, Any, Any], service: FromPath[str], state: State
) -> Response[bytes]:
    """Admit every call and count nothing until reset (state `disabled`)."""
    return await _control(request, state, service, "disable")


@post(
    "/breakers/{service:str}/metrics-only",
    summary="Put a breaker in metrics-only mode",
    status_code=200,
)
async def metrics_only(
    request: Request[Any, Any, Any], service: FromPath[str], state: State
) -> Response[bytes]:
    """Admit every call, count it and report trips without opening."""
    return await _control(request, state, service, "metrics-only")


def reload_app(state: State) -> dict[str, Any]:
    """Reload the configuration of a running app; raises `ConfigError`.

    Also refreshes the blocked networks, which the app keeps parsed.
    """
    reloader: Reloader | None = state.reloader
    if reloader is None:
        raise ConfigError(
            "reload is not available: this app was built without a configuration"
            " source (start it with `faultguard serve`)"
        )
    settings, result = reloader.reload(state.guard)
    state.blocked_networks = parse_networks(settings.security.blocked_networks)
    return {
        "status": "reloaded",
        "changed": result.changed,
        "restart_required": result.restart_required,
    }


@post("/admin/reload", summary="Re-read the configuration", status_code=200)
async def reload_config(
    request: Request[Any, Any, Any], state: State
) -> Response[bytes]:
    """Re-read the configuration from the start-up sources and apply it.

    An invalid configuration gets 422 problem JSON with the reason, and the
    configuration in force stays.
    """
    guard: Guard = state.guard
    denied = authorize(request, guard)
    if denied is not None:
        return denied

    if state.reloader is None:
        return problem(
            409,
            "reload is not available: this app was built without a configuration"
            " source (start it with `faultguard serve`)",
            title="Reload not available",
        )
    try:
        body = reload_app(state)
    except ConfigError as exc:
        logger.warning("config_reload_failed", extra={"error": str(exc)})
        return problem(422, str(exc), title="Invalid configuration")
    return Response(content=msgspec.json.encode(body), media_type="application/json")


ROUTES = [force_open, force_close, reset, disable, metrics_only, reload_config]
"""The admin route handlers, for the app's route list."""


@contextmanager
def sighup_reload(state: State) -> Iterator[None]:
    """Reload the configuration on SIGHUP while the block runs.

    Installs the handler on the running event loop, which only works in the
    main thread of a Unix process; elsewhere it logs
    `sighup_reload_unavailable` and runs the block without it.
    """
    loop = asyncio.get_running_loop()

    def on_sighup() -> None:
        try:
            reload_app(state)
        except ConfigError as exc:
            logger.error("config_reload_failed", extra={"error": str(exc)})

    try:
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        logger.warning("sighup_reload_unavailable", extra={"error": str(exc)})
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
