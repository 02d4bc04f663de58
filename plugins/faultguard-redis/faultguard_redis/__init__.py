"""faultguard's Redis backend: shared fallback entries and shared breaker state.

Install it next to faultguard (`pip install faultguard-redis`) and set
`storage.backend = "redis"` for the fallback store, `storage.breaker_state =
"redis"` for breaker state, or both. Settings live under `[storage.redis]`
(see `faultguard_redis.settings.RedisSettings`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from faultguard_core import hookimpl
from faultguard_core.storage.memory import max_age_of
from faultguard_redis.client import build_client
from faultguard_redis.fallback import RedisFallbackStore
from faultguard_redis.settings import redis_settings
from faultguard_redis.state import RedisBreakerStateStore

if TYPE_CHECKING:
    from faultguard_core.hookspecs import BreakerStateStoreFactory, StorageFactory
    from faultguard_core.settings import Settings

__all__ = ["RedisBreakerStateStore", "RedisFallbackStore"]


def build_fallback_store(settings: Settings) -> RedisFallbackStore:
    """Build the `redis` fallback store from `[storage]` and `[storage.redis]`."""
    config = redis_settings(settings)
    return RedisFallbackStore(
        build_client(config),
        prefix=config.hash_tagged_prefix,
        timeout=config.timeout,
        max_entry_bytes=settings.storage.max_entry_bytes,
        max_entries=settings.storage.max_entries,
        max_age=max_age_of(settings),
    )


def build_breaker_state_store(settings: Settings) -> RedisBreakerStateStore:
    """Build the `redis` breaker state store from `[storage.redis]`."""
    config = redis_settings(settings)
    return RedisBreakerStateStore(
        build_client(config), prefix=config.hash_tagged_prefix, timeout=config.timeout
    )


@hookimpl
def faultguard_register_storage_backends(
    register: Callable[[str, StorageFactory], None],
) -> None:
    """Register the `redis` fallback store."""
    register("redis", build_fallback_store)


@hookimpl
def faultguard_register_breaker_state_stores(
    register: Callable[[str, BreakerStateStoreFactory], None],
) -> None:
    """Register the `redis` breaker state store."""
    register("redis", build_breaker_state_store)
