"""Guards in the wallet's own Lua (issue 19, docs/guards.md): balance alerts, the auto top-up's
request and the monthly limits, each event written in the call that caused it, as an entry of
the account's ledger. The identity per kind is the redis fixture's check, after every test."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.billing.accounts import Directory
from gateway.billing.records import new_request_id
from gateway.billing.wallet import Admission, Limits, Refusal, Wallet
from gateway.store.keys import AccountKeys
from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.redis_cluster_too

FLAT = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]}  # 0.002 each


async def call(gw: Gateway, key: str, body: dict[str, Any] = FLAT) -> tuple[int, Any]:
    async with gw.http.post(gw.url + "/v1/chat/completions", json=body,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        return r.status, await r.json()


async def events(gw: Gateway, redis: Any, account: str,
                 name: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """The account's events, oldest first: the ledger's entries of type "event" (once the
    gateway's settles in flight are done: a wallet read waits for them)."""
    await gw.wallet(account)
    found = []
    for _, f in await redis.xrange(AccountKeys(account).ledger):
        if f["t"] == "event" and (name is None or f["e"] == name):
            found.append({"event": f["e"], "cause": f["r"], **json.loads(f["d"])})
    return found


async def patch(gw: Gateway, account: str, **fields: Any) -> dict[str, Any]:
    status, body = await gw.admin("PATCH", f"/admin/accounts/{account}", fields)
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def topup(gw: Gateway, account: str, amount: str, order_id: str) -> None:
    status, body = await gw.admin("POST", f"/admin/accounts/{account}/topups",
                                  {"amount": amount, "order_id": order_id})  # fmt: skip
    assert status == 201, body


async def test_a_new_account_has_the_plans_guards_and_they_can_be_changed(
    gateway: Gateway,
) -> None:
    status, made = await gateway.admin("POST", "/admin/accounts", {"name": "g"})
    assert status == 201, made
    assert (made["alert_threshold"], made["monthly_limit"], made["limit_action"],
            made["auto_topup"]) == ("5.00", "500.00", "pause", None)  # fmt: skip
    body = await patch(gateway, made["id"], alert_thresholds=["1.00", "20.00", "5.00"],
                       monthly_limit="50.00", limit_action="notify",
                       auto_topup={"threshold": "2.00", "target": "25.00"})  # fmt: skip
    assert body["alert_thresholds"] == ["20.00", "5.00", "1.00"]
    assert body["auto_topup"] == {"threshold": "2.00", "amount": None, "target": "25.00",
                                  "max_per_day": 3}  # fmt: skip
    status, again = await gateway.admin("GET", f"/admin/accounts/{made['id']}")
    assert again["monthly_limit"] == "50.00" and again["limit_action"] == "notify"
    body = await patch(gateway, made["id"], alert_threshold=None, monthly_limit=None,
                       auto_topup=None)  # fmt: skip
    assert (body["alert_thresholds"], body["monthly_limit"], body["auto_topup"]) == (
        [], None, None)
    for bad in ({"monthly_limit": "-1"}, {"monthly_limit": 5}, {"limit_action": "stop"},
                {"alert_thresholds": ["x"]}, {"auto_topup": {"threshold": "1.00"}},
                {"auto_topup": {"threshold": "5.00", "target": "4.00"}},
                {"auto_topup": {"threshold": "1.00", "amount": "2.00", "target": "9.00"}},
                {"auto_topup": {"threshold": "1.00", "amount": "2.00", "max_per_day": 0}}):
        status, err = await gateway.admin("PATCH", f"/admin/accounts/{made['id']}", bad)
        assert status == 400 and err["error"]["code"] == "invalid_request", (bad, err)
    status, body = await gateway.admin("GET", f"/admin/accounts/{made['id']}")
    assert body["auto_topup"] is None and body["monthly_limit"] is None  # nothing changed


async def test_one_alert_for_100_concurrent_crossings_and_again_once_re_armed(
    gateway: Gateway, upstream: FakeUpstream, redis: Any
) -> None:
    account, key = await gateway.account(topup="5.00", alert_threshold="4.90")
    statuses = await asyncio.gather(*(call(gateway, key) for _ in range(100)))
    assert [s for s, _ in statuses] == [200] * 100
    alerts = await events(gateway, redis, account, "balance_alert")
    assert alerts == [{"event": "balance_alert", "cause": "4900000000", "threshold": "4.90",
                       "balance": alerts[0]["balance"]}]  # fmt: skip
    assert "4.88" <= alerts[0]["balance"] < "4.90"
    await topup(gateway, account, "1.00", "more")  # 5.80: re-armed
    assert (await call(gateway, key))[0] == 200
    assert len(await events(gateway, redis, account, "balance_alert")) == 1
    for _ in range(2):  # no second event while it stays below
        await call(gateway, key)
    status, _ = await gateway.admin("POST", f"/admin/accounts/{account}/adjustments", {
        "amount": "-0.95", "order_id": "fee", "reason": "test", "operator": "t"})
    assert status == 201
    assert (await call(gateway, key))[0] == 200  # the next settle sees 4.8x < 4.90
    assert [a["threshold"] for a in await events(gateway, redis, account, "balance_alert")] == [
        "4.90", "4.90"]


async def test_one_auto_top_up_request_however_many_cross_and_it_clears_with_its_top_up(
    gateway: Gateway, upstream: FakeUpstream, redis: Any
) -> None:
    account, key = await gateway.account(topup="5.00", alert_threshold=None,
                                         auto_topup={"threshold": "4.95", "amount": "10.00",
                                                     "max_per_day": 2})  # fmt: skip
    await asyncio.gather(*(call(gateway, key) for _ in range(100)))  # down to 4.80
    asks = await events(gateway, redis, account, "wallet_balance_low")
    assert len(asks) == 1, asks
    ask = asks[0]
    assert (ask["threshold"], ask["action"], ask["amount"]) == ("4.95", "auto_top_up", "10.00")
    await call(gateway, key)  # still pending: no second request
    assert len(await events(gateway, redis, account, "wallet_balance_low")) == 1
    await topup(gateway, account, "10.00", ask["order_id"])  # the top-up it asked for
    assert await redis.hget(AccountKeys(account).wallet, "auto_pending") is None
    await patch(gateway, account, auto_topup={"threshold": "20.00", "target": "30.00",
                                              "max_per_day": 2})  # fmt: skip
    await call(gateway, key)
    asks = await events(gateway, redis, account, "wallet_balance_low")
    assert len(asks) == 2 and asks[1]["order_id"] != ask["order_id"]
    wallet = await gateway.wallet(account)
    # target - total, rounded up to the cent: 30.00 - 14.796 -> 15.21 (free quota: none)
    assert asks[1]["amount"] == "15.21" and wallet["cash"] == "14.796", (asks, wallet)
    await topup(gateway, account, "15.21", asks[1]["order_id"])  # 30.006: above
    await patch(gateway, account, auto_topup={"threshold": "40.00", "amount": "5.00",
                                              "max_per_day": 2})  # fmt: skip
    await call(gateway, key)
    assert len(await events(gateway, redis, account, "wallet_balance_low")) == 2  # 2 a day at most


async def test_the_monthly_limit_pauses_counting_holds_and_resumes_when_raised(
    gateway: Gateway, upstream: FakeUpstream, redis: Any
) -> None:
    account, key = await gateway.account(topup="5.00", monthly_limit="0.01")
    upstream.gate = asyncio.Event()
    stream = gateway.http.post(gateway.url + "/v1/chat/completions", json={**FLAT, "stream": True},
                               headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    async with stream as open_one:  # holds 0.002 while it runs
        assert open_one.status == 200
        for _ in range(4):
            assert (await call(gateway, key))[0] == 200
        status, body = await call(gateway, key)  # 0.008 spent + 0.002 held + 0.002 > 0.01
        assert status == 403 and body["error"]["code"] == "monthly_limit_reached", body
        assert "0.01 USD" in body["error"]["message"], body
        upstream.gate.set()
        await open_one.read()
    status, _ = await call(gateway, key)
    assert status == 403  # 0.010 spent: the limit is reached
    reached = await events(gateway, redis, account, "monthly_limit_reached")
    assert len(reached) == 1 and reached[0]["action"] == "pause", reached
    await patch(gateway, account, monthly_limit="0.02")
    assert (await call(gateway, key))[0] == 200
    await patch(gateway, account, monthly_limit="0.005")  # below the month's spend: at once
    assert (await call(gateway, key))[0] == 403
    assert len(await events(gateway, redis, account, "monthly_limit_reached")) == 1  # once a month


async def test_the_monthly_limit_under_notify_lets_traffic_go_on_and_says_so_once(
    gateway: Gateway, upstream: FakeUpstream, redis: Any
) -> None:
    account, key = await gateway.account(topup="5.00", monthly_limit="0.004",
                                         limit_action="notify")  # fmt: skip
    for _ in range(5):
        assert (await call(gateway, key))[0] == 200
    reached = await events(gateway, redis, account, "monthly_limit_reached")
    assert [(r["action"], r["month_spend"]) for r in reached] == [("notify", "0.004")]


async def test_a_keys_monthly_cap_refuses_past_its_own_spend(redis: Any) -> None:
    wallet = Wallet(redis)
    account = (await Directory(redis).create_account({"name": "k", "plan": "default"})).id
    await wallet.move_money(account, kind="topup", amount=10**9, order_id="t")
    capped, other = Limits(key_month=5_000), Limits()

    async def request(key: str, limits: Limits, cost: int) -> Admission | Refusal:
        rid = new_request_id()
        got = await wallet.admit(account, request_id=rid, key_id=key, hold=cost,
                                 policy="strict", est_tokens=1, limits=limits,
                                 hold_ttl_ms=60_000, record_ttl=600, record={"k": key})  # fmt: skip
        if isinstance(got, Admission):
            await wallet.settle(account, request_id=rid, key_id=key, cost=cost, tokens=1,
                                limits=limits, record_ttl=600)  # fmt: skip
        return got

    assert isinstance(await request("a", capped, 3_000), Admission)
    refused = await request("a", capped, 3_000)
    assert isinstance(refused, Refusal) and refused.reason == "key_limit", refused
    assert (refused.limit, refused.spent) == (5_000, 3_000)
    assert isinstance(await request("b", other, 3_000), Admission)  # another key: its own
    assert isinstance(await request("a", capped, 2_000), Admission)  # exactly to the cap
