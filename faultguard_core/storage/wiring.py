"""Build the fallback store and the shared breakers that the settings name."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from faultguard_core.errors import ConfigError
from faultguard_core.storage.base import BreakerPolicy, FallbackStore
from faultguard_core.storage.degrading import DegradingFallbackStore
from faultguard_core.storage.memory import MemoryStore, max_age_of
from faultguard_core.storage.shared import SharedBreakers

if TYPE_CHECKING:
    from faultguard_core.breaker import StateChange
    from faultguard_core.clock import Clock
    from faultguard_core.plugin_host import PluginHost
    from faultguard_core.settings import Settings

LOCAL = "local"
"""The `storage.breaker_state` value that keeps breaker state in the process."""

PROBE_TIMEOUT_MARGIN = 1.0
"""Seconds added to `request.deadline` before a silent probe slot is reclaimed."""


def build_fallback_store(settings: Settings, host: PluginHost) -> FallbackStore:
    """Build the `storage.backend` store, wrapped for degradation when remote.

    Set `on_degraded` of a returned `DegradingFallbackStore` to count its
    degradations.
    """
    store: FallbackStore = host.storage_backends.get(settings.storage.backend)(settings)
    if not store.remote:
        return store

    local = MemoryStore(
        max_entries=settings.storage.max_entries,
        max_entry_bytes=settings.storage.max_entry_bytes,
        max_bytes=settings.storage.max_bytes,
        max_age=max_age_of(settings),
    )
    return DegradingFallbackStore(store, local)


def breaker_state_backend(settings: Settings) -> tuple[str | None, bool]:
    """Return the backend of breaker state, and whether every breaker uses it.

    `storage.breaker_state` other than `local` shares every breaker. Else
    `breaker.persist_state`, globally or for some services, keeps those
    breakers in the `storage.backend` backend. Else (None, False): all local.
    """
    if settings.storage.breaker_state != LOCAL:
        return settings.storage.breaker_state, True

    persisted = settings.breaker.persist_state or any(
        settings.policy_for(name).breaker.persist_state for name in settings.services
    )
    if persisted:
        return settings.storage.backend, False
    return None, False


def build_shared_breakers(
    settings: Settings,
    host: PluginHost,
    *,
    clock: Clock,
    on_change: Callable[[StateChange], None],
    on_degraded: Callable[[], None],
) -> SharedBreakers | None:
    """Build the shared breakers, or None when every breaker stays local.

    Raises `ConfigError` when the backend registers no breaker state store.
    """
    backend, share_all = breaker_state_backend(settings)
    if backend is None:
        return None
    if backend not in host.breaker_state_stores.names():
        known = ", ".join(host.breaker_state_stores.names()) or "none"
        setting = "storage.breaker_state" if share_all else "storage.backend"
        raise ConfigError(
            f"{setting} = {backend!r}: that backend cannot keep breaker state"
            f" (backends that can: {known}, or {LOCAL!r}); choose one of them or"
            " set breaker.persist_state = false"
        )

    store = host.breaker_state_stores.get(backend)(settings)
    policies: dict[str, BreakerPolicy | None] = {}

    def policy_of(name: str) -> BreakerPolicy | None:
        if name in policies:
            return policies[name]
        if name in settings.services:
            policy = settings.policy_for(name)
        else:
            policy = settings.default_policy()
        found: BreakerPolicy | None = None
        if share_all or policy.breaker.persist_state:
            found = BreakerPolicy(
                max_failures=policy.breaker.max_failures,
                open_duration=policy.breaker.open_duration,
                half_open_max_calls=policy.breaker.half_open_max_calls,
                probe_timeout=policy.request.deadline + PROBE_TIMEOUT_MARGIN,
            )
        policies[name] = found
        return found

    return SharedBreakers(
        store,
        policy_of=policy_of,
        clock=clock,
        on_change=on_change,
        on_degraded=on_degraded,
        timeout=store.operation_timeout,
    )


async def check_storage_opens(
    store: FallbackStore, shared: SharedBreakers | None
) -> None:
    """Open and close the local stores once, so start-up fails before serving.

    Migrates an older file. Raises `StorageError` with the path and what to
    do for a file that is corrupt, of a newer schema version or not
    writable. Remote stores are skipped, because they degrade instead of
    stopping start-up.
    """
    if not store.remote and not isinstance(store, DegradingFallbackStore):
        await store.open()
        await store.close()
    if shared is not None and shared.store.operation_timeout is None:
        await shared.store.open()
        await shared.store.close()
