"""An aiohttp transport for faultguard, registered as `transport.name = "aiohttp"`."""

from __future__ import annotations

from collections.abc import Callable

from faultguard_aiohttp._transport import AiohttpTransport
from faultguard_core import hookimpl
from faultguard_core.settings import Settings
from faultguard_core.transport.base import Transport

__all__ = ["AiohttpTransport", "faultguard_register_transports"]


def _build(settings: Settings) -> Transport:
    return AiohttpTransport(
        max_connections=settings.transport.max_connections,
        keepalive_expiry=settings.transport.keepalive_expiry,
        max_response_bytes=settings.request.max_response_bytes,
        follow_redirects=settings.request.follow_redirects,
    )


@hookimpl
def faultguard_register_transports(
    register: Callable[[str, Callable[[Settings], Transport]], None],
) -> None:
    register("aiohttp", _build)
