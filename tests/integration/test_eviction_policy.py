"""A Redis that may evict keys when full keeps /readyz red, naming the setting: an evicted
wallet, hold or ledger would be money vanishing without a trace."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Gateway

pytestmark = pytest.mark.redis_cluster_too


async def set_policy(redis: Any, redis_target: Any, policy: str) -> None:
    if redis_target.cluster:
        await redis.config_set("maxmemory-policy", policy, target_nodes=redis.ALL_NODES)
    else:
        await redis.config_set("maxmemory-policy", policy)


async def test_readyz_is_red_while_redis_may_evict(
    gateway: Gateway, redis: Any, redis_target: Any
) -> None:
    async with gateway.http.get(gateway.url + "/readyz") as r:
        assert r.status == 200
    await set_policy(redis, redis_target, "allkeys-lru")
    try:
        async with gateway.http.get(gateway.url + "/readyz") as r:
            body = await r.json()
            assert r.status == 503
            assert "maxmemory-policy is allkeys-lru" in body["redis"]
            assert "noeviction" in body["redis"]
    finally:
        await set_policy(redis, redis_target, "noeviction")
    async with gateway.http.get(gateway.url + "/readyz") as r:
        assert r.status == 200
