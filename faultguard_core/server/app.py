"""The Litestar app factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

import anyio
from litestar import Litestar
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig

from faultguard_core.guard import Guard
from faultguard_core.reload import Reloader
from faultguard_core.security import Resolver, parse_networks, system_resolver
from faultguard_core.server import admin, routes
from faultguard_core.server.problems import (
    http_exception_handler,
    internal_error_handler,
    nesting_error_handler,
)
from faultguard_core.settings import Settings

logger = logging.getLogger("faultguard")

SHARED_STATE_REFRESH_SECONDS = 1.0
"""How often a process reads its shared breakers' states from the store."""


async def _refresh_shared_states(guard: Guard) -> None:
    while True:
        try:
            await guard.refresh_shared_states()
        except Exception:
            # A refresh is best effort: the next call reads the store anyway.
            logger.exception("shared_state_refresh_failed")
        await anyio.sleep(SHARED_STATE_REFRESH_SECONDS)


def create_app(
    settings: Settings,
    guard: Guard | None = None,
    resolver: Resolver | None = None,
    *,
    reloader: Reloader | None = None,
    handle_sighup: bool = False,
) -> Litestar:
    """Build the REST app for `settings`.

    The guard (plugins, store, transport, exporters) is built here unless one
    is passed in. It is opened when the app starts and closed when it stops.
    `resolver` replaces the system resolver of target checks, for tests.
    `reloader` enables `POST /admin/reload`, and `handle_sighup` also reloads
    on SIGHUP while the app runs.
    """
    guard = guard or Guard.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with guard, anyio.create_task_group() as background:
            if guard.shared_breakers is not None:
                background.start_soon(_refresh_shared_states, guard)
            reloading = (
                admin.sighup_reload(app.state)
                if handle_sighup and reloader is not None
                else nullcontext()
            )
            with reloading:
                yield
            background.cancel_scope.cancel()

    app = Litestar(
        route_handlers=[
            routes.execute,
            routes.health,
            routes.ready,
            routes.list_breakers,
            routes.get_breaker,
            *admin.ROUTES,
        ],
        lifespan=[lifespan],
        exception_handlers={
            HTTPException: http_exception_handler,
            RecursionError: nesting_error_handler,
            Exception: internal_error_handler,
        },
        openapi_config=OpenAPIConfig(
            title="faultguard", version="0.1.0", path="/schema"
        ),
        request_max_body_size=settings.server.max_body_bytes,
        debug=False,
        # The CLI configures logging; the app must not install its own handlers.
        logging_config=None,
    )
    app.state.guard = guard
    app.state.blocked_networks = parse_networks(settings.security.blocked_networks)
    app.state.resolver = resolver or system_resolver
    app.state.reloader = reloader
    return app
