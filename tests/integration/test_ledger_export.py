"""GET /admin/ledger: every account's entries, each exactly once, from any cursor; and the relay
behind it neither repeats nor skips when its leader dies or pauses. Single Redis and Cluster."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest

from gateway.billing.accounts import Directory
from gateway.billing.feed import LedgerRelay, NotLeader
from gateway.billing.wallet import Limits, Wallet
from gateway.store.keys import AccountKeys, ledger_feed, ledger_relay_lock
from pricing import parse_usd
from tests.integration.conftest import Gateway

pytestmark = pytest.mark.redis_cluster_too


async def export(gw: Gateway, after: str = "", limit: int = 1000) -> list[dict[str, Any]]:
    async with gw.http.get(f"{gw.url}/admin/ledger", params={"after": after, "limit": limit},
                           headers=gw.admin_headers) as r:  # fmt: skip
        assert r.status == 200, await r.text()
        assert r.content_type == "application/x-ndjson"
        return [orjson.loads(line) for line in (await r.read()).splitlines()]


async def read_in_pages(gw: Gateway, after: str, sizes: random.Random) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = await export(gw, after, sizes.randint(1, 9))
        if not page:
            return out
        out += page
        after = page[-1]["cursor"]


async def ledgers(redis: Any, accounts: list[str]) -> dict[str, list[str]]:
    return {a: [i for i, _ in await redis.xrange(AccountKeys(a).ledger)] for a in accounts}


async def test_every_entry_once_in_pages_from_any_cursor(gateway: Gateway, redis: Any) -> None:
    accounts, keys = [], []
    for n in range(3):
        account, key = await gateway.account(topup="1.00")
        accounts.append(account)
        keys.append(key)
        await gateway.admin("POST", f"/admin/accounts/{account}/refunds",
                            {"amount": "0.10", "order_id": f"refund-{n}"})  # fmt: skip
    body = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(6):
        for key in keys:
            auth = {"Authorization": f"Bearer {key}"}
            async with gateway.http.post(gateway.url + "/v1/chat/completions", json=body,
                                         headers=auth) as r:  # fmt: skip
                assert r.status == 200
    for account in accounts:
        await gateway.wallet(account)  # this process's settles have landed
    expected = await ledgers(redis, accounts)
    total = sum(len(ids) for ids in expected.values())
    # A top-up, a refund, six charges, and one balance alert each (the default alert at 5.00:
    # the first settle finds the balance below it; events are ledger entries, docs/guards.md).
    assert total == 3 * (1 + 1 + 6 + 1)

    for _ in range(100):  # the relay runs every 0.2 s
        full = await export(gateway)
        if len(full) >= total:
            break
        await asyncio.sleep(0.1)
    assert len(full) == total
    cursors = [line["cursor"] for line in full]
    assert len(set(cursors)) == total
    for account, ids in expected.items():  # each entry once, in its account's order
        assert [line["entry"] for line in full if line["account"] == account] == ids

    sizes = random.Random(7)
    assert await read_in_pages(gateway, "", sizes) == full
    for i in sizes.sample(range(total), 10):
        assert await read_in_pages(gateway, cursors[i], sizes) == full[i + 1 :]
    assert await export(gateway, cursors[-1]) == []  # caught up: an empty body

    kinds = {line["type"] for line in full}
    assert kinds == {"topup", "refund", "charge", "event"}
    alerts = [line for line in full if line["type"] == "event"]
    assert [(a["event"], a["data"]["threshold"]) for a in alerts] == [("balance_alert", "5.00")] * 3
    assert all(a["event_id"] == f"evt_{a['account']}_{a['entry']}" for a in alerts)
    for line in full:
        split = sum(parse_usd(v) for v in line["source"].values())
        assert split == parse_usd(line["amount"]), line
        if line["type"] == "charge":
            assert line["request_id"].startswith("req_") and line["model"] == "gpt-flat"
            assert line["amount"] == "0.002" and line["project"] == "default"


async def test_bad_cursors_and_limits_are_400(gateway: Gateway) -> None:
    for params in ({"after": "not-a-cursor"}, {"limit": "0"}, {"limit": "x"}):
        url = f"{gateway.url}/admin/ledger"
        async with gateway.http.get(url, params=params,
                                    headers=gateway.admin_headers) as r:  # fmt: skip
            assert r.status == 400
            assert (await r.json())["error"]["code"] == "invalid_request"
    async with gateway.http.get(f"{gateway.url}/admin/ledger") as r:
        assert r.status == 401


async def test_a_ledger_cursor_redis_cannot_read_is_a_400_not_a_503(gateway: Gateway) -> None:
    """The cursor check (``\\d{1,20}-\\d{1,20}``) passed any Unicode digit, halves past a
    stream id's 64 bits and the last id of all; Redis refused each, and a refusal is taken for
    Redis failing: 503, and the breaker opened for every request (found by test_openapi)."""
    account, _ = await gateway.account()
    for after in ("\u0661-\u0661", "18446744073709551616-0", "0-99999999999999999999",
                  "18446744073709551615-18446744073709551615"):  # fmt: skip
        async with gateway.http.get(gateway.url + "/admin/ledger", params={"after": after},
                                    headers=gateway.admin_headers) as r:  # fmt: skip
            assert r.status == 400, (after, r.status, await r.text())
            assert (await r.json())["error"]["param"] == "after"
        assert (await gateway.wallet(account))["balance"] == "10.00"  # the breaker stays shut
    async with gateway.http.get(gateway.url + "/admin/ledger",
                                params={"after": "18446744073709551615-18446744073709551614"},
                                headers=gateway.admin_headers) as r:  # fmt: skip
        assert (r.status, await r.read()) == (200, b"")  # nothing after it: caught up


async def funded_with_entries(redis: Any, n: int) -> tuple[Wallet, str]:
    wallet = Wallet(redis)
    account = (await Directory(redis).create_account({"name": "t", "plan": "p"})).id
    await wallet.move_money(account, kind="topup", amount=10_000, order_id="seed")
    for i in range(n):
        rid = f"r{i}"
        await wallet.admit(account, request_id=rid, key_id="k", hold=10, policy="strict",
                           est_tokens=1, limits=Limits(), hold_ttl_ms=60_000, record_ttl=60,
                           record={"m": "m"})  # fmt: skip
        await wallet.settle(account, request_id=rid, key_id="k", cost=i, tokens=1,
                            limits=Limits(), record_ttl=60)  # fmt: skip
    return wallet, account


async def feed_pointers(redis: Any) -> list[tuple[str, str]]:
    return [(f["a"], f["e"]) for _, f in await redis.xrange(ledger_feed())]


async def test_a_new_leader_neither_repeats_nor_skips_what_a_dead_one_appended(
    redis: Any,
) -> None:
    wallet, account = await funded_with_entries(redis, 5)
    _, quiet = await funded_with_entries(redis, 2)  # its dirty marks died with their process
    ids = [i for i, _ in await redis.xrange(AccountKeys(account).ledger)]
    dead = LedgerRelay(redis, wallet.scripts, retention_s=3600)
    assert await dead._lead()
    # It appended three pointers, then died before it moved the account's mark.
    await wallet.scripts.call("relay_append_v1", [ledger_feed(), ledger_relay_lock()],
                              [dead._token, 3_600_000, account, *ids[:3]])  # fmt: skip
    await redis.delete(ledger_relay_lock())  # its lock expires

    leader = LedgerRelay(redis, wallet.scripts, retention_s=3600)
    leader.touched(account)
    await leader.flush_dirty()
    await leader.run_once()
    pointers = await feed_pointers(redis)
    assert [e for a, e in pointers if a == account] == ids  # the first three once, then the rest
    quiet_ids = [i for i, _ in await redis.xrange(AccountKeys(quiet).ledger)]
    assert [e for a, e in pointers if a == quiet] == quiet_ids  # found by the new leader's sweep
    await leader.run_once()
    assert await feed_pointers(redis) == pointers  # nothing new: nothing appended again


async def test_a_leader_that_lost_its_lock_appends_nothing(redis: Any) -> None:
    wallet, account = await funded_with_entries(redis, 3)
    paused = LedgerRelay(redis, wallet.scripts, retention_s=3600)
    assert await paused._lead()
    await redis.delete(ledger_relay_lock())  # it paused past its lock's expiry
    other = LedgerRelay(redis, wallet.scripts, retention_s=3600)
    assert await other._lead()
    with pytest.raises(NotLeader):
        await paused._relay_account(account)
    assert await feed_pointers(redis) == []
