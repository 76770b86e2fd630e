"""The API-key cache under concurrency: requests that miss it together share one lookup, and a
lookup that an admin change overtook is not cached.

Redis is held still with ``CLIENT PAUSE`` so that every request arrives while the first
lookup is waiting in it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.app import AUTH
from gateway.billing.accounts import hash_key
from gateway.store.keys import api_key_by_hash
from tests.integration.conftest import Gateway
from tests.support.ledger import assert_ledger_identity

BODY = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hello"}]}


async def _post(gw: Gateway, key: str) -> tuple[int, Any]:
    async with gw.http.post(gw.url + "/v1/chat/completions", json=BODY,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        return r.status, await r.json()


async def test_requests_that_miss_the_key_cache_together_share_one_lookup(
    gateway: Gateway, redis: Any
) -> None:
    account, key = await gateway.account(topup="1.00")
    await redis.config_resetstat()
    await redis.execute_command("CLIENT", "PAUSE", 300)  # the first lookup waits in Redis
    answers = await asyncio.gather(*(_post(gateway, key) for _ in range(8)))
    assert [status for status, _ in answers] == [200] * 8, answers
    stats = await redis.info("commandstats")
    # One read of the key's record and one of its account's, not eight of each.
    assert stats["cmdstat_hgetall"]["calls"] == 2, stats["cmdstat_hgetall"]
    await gateway.wallet(account)  # answered before their settles: wait for those to land
    await assert_ledger_identity(redis)


async def test_a_lookup_overtaken_by_an_admin_change_is_not_cached(
    gateway: Gateway, redis: Any
) -> None:
    account, key = await gateway.account(topup="1.00")
    await redis.execute_command("CLIENT", "PAUSE", 1000)
    first = asyncio.create_task(_post(gateway, key))
    # Its lookup is under way within milliseconds, then waits in Redis until the pause ends.
    await asyncio.sleep(0.3)
    auth = gateway.app[AUTH]
    auth.forget(account_id=account)  # what an admin change does in this process
    status, _ = await first
    assert status == 200  # the lookup read the key as it was when it started
    await redis.delete(api_key_by_hash(hash_key(key)))  # then another process revokes it
    status, body = await _post(gateway, key)
    assert status == 401, body  # read again, not served from a cache filled before the change
    assert body["error"]["code"] == "invalid_api_key"
    await gateway.wallet(account)
    await assert_ledger_identity(redis)
