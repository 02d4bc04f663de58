"""The `[storage.redis]` settings of the Redis backend."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from faultguard_core.durations import Duration
from faultguard_core.errors import ConfigError
from faultguard_core.settings import Settings


class RedisSettings(BaseModel):
    """Where Redis is and how the backend names its keys.

    `key_prefix` starts every key. Unless it already contains a `{...}` hash
    tag, it is wrapped in one (`{faultguard}`), so all keys of a deployment
    hash to one Redis Cluster slot and the Lua scripts may touch several of
    them. Give each deployment that shares a Redis its own prefix.
    """

    model_config = ConfigDict(extra="forbid")

    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = Field("faultguard", min_length=1)
    timeout: Duration = 0.25
    cluster: bool = False
    sentinels: list[str] = []
    sentinel_master: str = "mymaster"
    max_connections: int = Field(50, ge=1)

    @property
    def hash_tagged_prefix(self) -> str:
        """`key_prefix` with a hash tag: unchanged if it has one, else `{prefix}`."""
        if "{" in self.key_prefix and "}" in self.key_prefix:
            return self.key_prefix
        return "{" + self.key_prefix + "}"


def redis_settings(settings: Settings) -> RedisSettings:
    """Read `storage.redis` from the extra keys of `[storage]`.

    Raises `ConfigError` naming the key when a value is invalid.
    """
    extra: dict[str, Any] = settings.storage.model_extra or {}
    raw = extra.get("redis", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"storage.redis must be a table, got {raw!r}")
    try:
        parsed = RedisSettings.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(
            f"storage.redis.{'.'.join(str(part) for part in error['loc'])}:"
            f" {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {details}") from None
    if parsed.timeout <= 0:
        raise ConfigError("storage.redis.timeout must be above 0s")
    return parsed
