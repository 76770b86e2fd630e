"""The Redis client the gateway runs on, tuned to fail fast.

redis-py retries a failed command ten times with exponential backoff by default; a billing
gateway must instead answer 503 ``billing_unavailable`` at once (fail closed, never free
traffic) and let the next request try again. Scripts are re-sent by redis-py on NOSCRIPT, so a
restarted or failed-over Redis needs nothing more.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
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
    return Redis.from_url(url, max_connections=max_connections, health_check_interval=30,
                          **common)  # fmt: skip
