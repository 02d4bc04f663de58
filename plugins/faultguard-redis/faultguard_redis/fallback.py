"""The `redis` fallback store: entries as hashes with a TTL, shared by replicas."""

from __future__ import annotations

import contextlib
import json
from typing import Any, ClassVar

from redis.exceptions import RedisError

from faultguard_core.clock import Clock, SystemClock
from faultguard_core.errors import StorageError
from faultguard_core.storage.base import EntryKey, FallbackStore, StoredResponse

# KEYS: entry, LRU index. ARGV: fetched_at, stored_at, status, headers, body,
# ttl_ms (0: none), max_entries (0: none), stale_before (an entry stored
# before it is past max_age and never counts as newer). The LRU order uses
# Redis TIME.
# Evicted entry keys are not in KEYS, but they carry the same hash tag, so
# they live in the same Cluster slot.
_PUT = """
local current = redis.call('HMGET', KEYS[1], 'fetched_at', 'stored_at')
if current[1] and tonumber(current[1]) > tonumber(ARGV[1])
    and tonumber(current[2]) >= tonumber(ARGV[8]) then
  return 0
end
redis.call('HSET', KEYS[1], 'fetched_at', ARGV[1], 'stored_at', ARGV[2],
  'status', ARGV[3], 'headers', ARGV[4], 'body', ARGV[5])
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('PERSIST', KEYS[1])
end
local max_entries = tonumber(ARGV[7])
if max_entries > 0 then
  local time = redis.call('TIME')
  local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
  redis.call('ZADD', KEYS[2], now, KEYS[1])
  local excess = redis.call('ZCARD', KEYS[2]) - max_entries
  if excess > 0 then
    local victims = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
    for _, victim in ipairs(victims) do
      redis.call('DEL', victim)
    end
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
  end
end
return 1
"""

# KEYS: entry, LRU index. ARGV: max_entries (0: none).
_GET = """
local fields = redis.call('HMGET', KEYS[1], 'status', 'headers', 'body',
  'fetched_at', 'stored_at')
if fields[1] and tonumber(ARGV[1]) > 0 then
  local time = redis.call('TIME')
  redis.call('ZADD', KEYS[2], tonumber(time[1]) + tonumber(time[2]) / 1000000,
    KEYS[1])
end
return fields
"""


class RedisFallbackStore(FallbackStore):
    """Fallback entries in Redis, one hash per `EntryKey.digest`.

    `max_age` (seconds) becomes each entry's TTL, counted from its
    `stored_at`, so Redis deletes expired entries itself. With
    `max_entries`, a sorted set orders entries by last use (Redis time) and
    a `put` past the limit deletes the least recently used. Every put and
    get is one Lua script, so the newer-wins check and the write are atomic
    across replicas. Every Redis error or timeout is raised as
    `StorageError`, and the guard then degrades to a local memory store.
    """

    remote: ClassVar[bool] = True

    def __init__(
        self,
        client: Any,
        *,
        prefix: str,
        timeout: float,
        max_entry_bytes: int,
        max_entries: int | None = None,
        max_age: float | None = None,
        clock: Clock | None = None,
        owns_client: bool = True,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.operation_timeout = timeout
        self.max_entry_bytes = max_entry_bytes
        self.max_entries = max_entries
        self.max_age = max_age
        self._clock = clock or SystemClock()
        self._owns_client = owns_client
        self._put = client.register_script(_PUT)
        self._get = client.register_script(_GET)
        self._lru_key = f"{prefix}:fb-lru"

    def entry_key(self, key: EntryKey) -> str:
        """Return the Redis key of `key`'s entry."""
        return f"{self.prefix}:fb:{key.digest}"

    async def close(self) -> None:
        """Close the client's connections if this store created the client."""
        if self._owns_client:
            # A client that lost its server has nothing left to release.
            with contextlib.suppress(RedisError):
                await self.client.aclose()

    async def check(self) -> None:
        """Send PING; raises `StorageError` when Redis does not respond."""
        try:
            await self.client.ping()
        except RedisError as exc:
            raise StorageError(f"Redis fallback store: PING failed: {exc}") from exc

    async def get(self, key: EntryKey) -> StoredResponse | None:
        """Return the entry under `key`, or None if there is none or it expired."""
        try:
            fields = await self._get(
                keys=[self.entry_key(key), self._lru_key],
                args=[self.max_entries or 0],
            )
        except RedisError as exc:
            raise StorageError(f"Redis fallback store: read failed: {exc}") from exc

        status, headers, body, fetched_at, stored_at = fields
        if status is None:
            return None
        stored = StoredResponse(
            status_code=int(status),
            headers=tuple((str(n), str(v)) for n, v in json.loads(headers)),
            body=bytes(body),
            fetched_at=float(fetched_at),
            stored_at=float(stored_at),
        )
        age = self._clock.wall() - stored.stored_at
        if self.max_age is not None and age > self.max_age:
            return None
        return stored

    async def put(self, key: EntryKey, response: StoredResponse) -> bool:
        """Store `response` unless too large, expired or older than the entry."""
        if len(response.body) > self.max_entry_bytes:
            return False
        ttl_ms = 0
        stale_before = "-inf"
        if self.max_age is not None:
            now = self._clock.wall()
            remaining = self.max_age - (now - response.stored_at)
            if remaining <= 0:
                return False
            ttl_ms = max(1, int(remaining * 1000))
            stale_before = repr(now - self.max_age)

        try:
            written = await self._put(
                keys=[self.entry_key(key), self._lru_key],
                args=[
                    repr(response.fetched_at),
                    repr(response.stored_at),
                    response.status_code,
                    json.dumps([list(pair) for pair in response.headers]),
                    response.body,
                    ttl_ms,
                    self.max_entries or 0,
                    stale_before,
                ],
            )
        except RedisError as exc:
            raise StorageError(f"Redis fallback store: write failed: {exc}") from exc
        return bool(written)

    async def delete(self, key: EntryKey) -> bool:
        """Delete the entry under `key`; returns whether it existed."""
        name = self.entry_key(key)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(name)
                pipe.zrem(self._lru_key, name)
                deleted, _ = await pipe.execute()
        except RedisError as exc:
            raise StorageError(f"Redis fallback store: delete failed: {exc}") from exc
        return bool(deleted)

    async def expire(self) -> int:
        """Return 0: Redis deletes entries past `max_age` itself through their TTL.

        Also drops index members of entries that Redis already expired.
        """
        if self.max_age is None or self.max_entries is None:
            return 0
        cutoff = self._clock.wall() - self.max_age
        try:
            await self.client.zremrangebyscore(self._lru_key, "-inf", cutoff)
        except RedisError as exc:
            raise StorageError(f"Redis fallback store: expire failed: {exc}") from exc
        return 0
