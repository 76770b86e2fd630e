"""The Redis client the gateway runs on, tuned to fail fast: one Redis (``redis://``, TLS with
``rediss://``, a socket with ``unix://``), a Cluster, or a master found through Sentinel
(``redis+sentinel://``).

redis-py retries a failed command ten times with exponential backoff by default; a billing
gateway must instead answer 503 ``billing_unavailable`` at once (fail closed, never free
traffic) and let the next request try again. Scripts are re-sent by redis-py on NOSCRIPT, so a
restarted or failed-over Redis needs nothing more.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff


def make_redis(url: str, *, cluster: bool = False, timeout: float = 2.0,
               max_connections: int = 256) -> Any:  # fmt: skip
    """A client for ``url``; ``timeout`` bounds connecting and each command.

    Timeouts are generous so that a burst of new connections on a busy host never looks like
    an outage; a real outage is absorbed by :class:`gateway.store.breaker.Breaker`.
    """
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    if cluster:
        return RedisCluster.from_url(url, max_connections=max_connections, **common)
    if url.startswith(SENTINEL_SCHEME):
        return sentinel_master(url, max_connections=max_connections, **common)
    return Redis.from_url(url, max_connections=max_connections, health_check_interval=30,
                          **common)  # fmt: skip


SENTINEL_SCHEME = "redis+sentinel://"


def sentinel_master(url: str, **options: Any) -> Any:
    """The master that Sentinel names, followed across failovers (redis-py asks the sentinels
    again whenever the connection breaks). The URL is
    ``redis+sentinel://[:password@]host:port[,host:port...]/<service name>[/<db>]``; the
    password, if any, is the master's."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    password = unquote(parts.password) if parts.password else None
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":")
        sentinels.append((host or item, int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(f"{url}: the Sentinel service name is missing (.../<service>/<db>)")
    db = int(path[1]) if len(path) > 1 else 0
    timeouts: dict[str, Any] = {
        k: options[k] for k in ("socket_timeout", "socket_connect_timeout") if k in options
    }
    sentinel = Sentinel(sentinels, sentinel_kwargs=timeouts, **options)
    return sentinel.master_for(path[0], redis_class=_SentinelMaster, db=db, password=password)


class _SentinelMaster(Redis):
    """The master's client; closing it closes the connections to the sentinels as well."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for client in self.connection_pool.sentinel_manager.sentinels:  # type: ignore[attr-defined]
            await client.aclose()
