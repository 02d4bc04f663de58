"""Building the redis-py asyncio client for a single server, Sentinel or Cluster."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from faultguard_redis.settings import RedisSettings


def build_client(settings: RedisSettings) -> Any:
    """Return a client that gives up after `settings.timeout` without retrying.

    The guard retries the whole backend after its reconnect interval, so a
    retry inside redis-py would only lengthen the time a call may block.
    No connection is made until the first command.
    """
    options: dict[str, Any] = {
        "socket_timeout": settings.timeout,
        "socket_connect_timeout": settings.timeout,
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": False,
    }
    if settings.sentinels:
        hosts = [_host_port(entry) for entry in settings.sentinels]
        sentinel = Sentinel(hosts, **options)
        return sentinel.master_for(settings.sentinel_master, **options)
    if settings.cluster:
        return RedisCluster.from_url(settings.url, **options)
    # A blocking pool waits up to `timeout` for a free connection when
    # `max_connections` calls are in flight, instead of failing at once.
    pool = BlockingConnectionPool.from_url(
        settings.url,
        max_connections=settings.max_connections,
        timeout=settings.timeout,
        **options,
    )
    return Redis(connection_pool=pool)


def _host_port(entry: str) -> tuple[str, int]:
    host, _, port = entry.rpartition(":")
    return (host or entry, int(port) if port else 26379)
