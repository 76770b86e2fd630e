"""The monthly renewal of the plans' free quota (issue 18, docs/wallet.md): at the start of each
month (a clock the test drives) a monthly plan's quota is reset to the plan's amount, the unused
part leaving through one free_quota_expired entry and the new month's coming in through one
free_quota entry; once per (account, month, category) however many renewers run; never on a
"once" plan or a plan with no quota. The identity per kind is the redis fixture's."""

from __future__ import annotations

import asyncio
import calendar
import json
import time
from typing import Any

import pytest

from gateway.app import FREE_RENEWAL, WALLET
from gateway.billing.accounts import Directory
from gateway.billing.free_renewal import FreeQuotaRenewer, month_of
from gateway.billing.lua_scripts import RedisPyScripts
from gateway.billing.plans import parse_plans
from gateway.billing.records import new_request_id
from gateway.billing.wallet import Admission, Limits, Settlement, Wallet
from gateway.store.keys import AccountKeys
from tests.integration.conftest import Gateway, GatewayFactory
from tests.integration.test_plans import make
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.redis_cluster_too

USD = 10**9
FLAT = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]}  # 0.002 each
PLANS = parse_plans({
    "team": {"can_top_up": True, "free_quota": {"ai": "2.00", "cloud": "0.50"}},
    "trial": {"free_quota": {"ai": "0.50"}, "free_quota_renews": "once"},
})  # fmt: skip


async def month_start(redis: Any, ahead: int) -> int:
    """A minute into the ``ahead``-th month after the one Redis's clock is in (unix ms)."""
    seconds, _ = await redis.time()
    now = time.gmtime(int(seconds))
    years, month = divmod(now.tm_mon - 1 + ahead, 12)
    return calendar.timegm((now.tm_year + years, month + 1, 1, 0, 1, 0)) * 1000


def renewer(redis: Any, at: int) -> FreeQuotaRenewer:
    """A renewer of its own (through redis-py) whose clock says ``at``."""
    return FreeQuotaRenewer(redis, RedisPyScripts(redis), Directory(redis), PLANS,
                            clock=lambda: at)  # fmt: skip


async def spend(gw: Gateway, key: str) -> None:
    async with gw.http.post(gw.url + "/v1/chat/completions", json=FLAT,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        assert r.status == 200, await r.text()


async def free_entries(redis: Any, account: str) -> list[tuple[str, str, int, str]]:
    """(type, order id, amount, split) of the account's free quota entries, oldest first."""
    ledger = await redis.xrange(AccountKeys(account).ledger)
    return [(f["t"], f["r"], int(f["a"]), f["s"]) for _, f in ledger
            if f["t"].startswith("free_quota")]  # fmt: skip


async def hold(wallet: Wallet, account: str, request_id: str, amount: int) -> None:
    admitted = await wallet.admit(
        account, request_id=request_id, key_id="k", hold=amount, policy="strict",
        est_tokens=10, limits=Limits(), hold_ttl_ms=60_000, record_ttl=60, record={},
    )  # fmt: skip
    assert isinstance(admitted, Admission), admitted


async def settle(wallet: Wallet, account: str, request_id: str, cost: int) -> Settlement:
    settled = await wallet.settle(account, request_id=request_id, key_id="k", cost=cost,
                                  tokens=5, limits=Limits(), record_ttl=60)  # fmt: skip
    assert settled is not None
    return settled


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> Gateway:
    return await make_gateway(plans=PLANS)


async def test_the_month_turns_and_the_unused_quota_leaves_for_a_new_one(
    gw: Gateway, redis: Any, upstream: FakeUpstream
) -> None:
    account, key = await make(gw, "free")
    await spend(gw, key)
    assert (await gw.wallet(account))["free_quota"] == "0.998"
    january = await month_start(redis, 1)
    month = month_of(january)

    assert await renewer(redis, january).renew_all(month) == (1, True)
    wallet = await gw.wallet(account)
    assert wallet["free_quota"] == "1.00" and wallet["balance"] == "1.00", wallet
    assert wallet["free_quota_by_category"] == {"ai": "1.00", "cloud": "0.00"}
    order = f"free-renew:{month}:ai"
    assert (await free_entries(redis, account))[1:] == [
        ("free_quota_expired", order, 998_000_000, "998000000,0,0"),
        ("free_quota", order, USD, f"{USD},0,0"),
    ]
    fields = await redis.hmget(AccountKeys(account).wallet, ["free_month", "free_expired"])
    assert fields == [month, "998000000"]
    status, txns = await gw.admin("GET", f"/admin/accounts/{account}/transactions")
    assert status == 200 and txns["data"] == [], txns  # free quota is not money in

    # The same month again, from a renewer that has never run: nothing more.
    assert await renewer(redis, january).renew_all(month) == (0, True)
    assert len(await free_entries(redis, account)) == 3
    # February, with nothing spent: the whole dollar expires, a new one comes.
    february = await month_start(redis, 2)
    assert await renewer(redis, february).renew_all(month_of(february)) == (1, True)
    assert [(t, a) for t, _, a, _ in await free_entries(redis, account)][3:] == [
        ("free_quota_expired", USD), ("free_quota", USD)]  # fmt: skip
    assert (await gw.wallet(account))["free_quota"] == "1.00"


async def test_concurrent_renewers_and_a_replay_renew_each_category_once(
    gw: Gateway, redis: Any
) -> None:
    accounts = [(await make(gw, "team"))[0] for _ in range(5)]
    january = await month_start(redis, 1)
    month = month_of(january)
    walks = [renewer(redis, january).renew_all(month) for _ in range(4)]
    directory = Directory(redis)
    single = [renewer(redis, january).renew(await directory.get_account(a), month)
              for a in accounts for _ in range(3)]  # fmt: skip
    walked, alone = await asyncio.gather(asyncio.gather(*walks), asyncio.gather(*single))
    renewed = sum(n for n, _ in walked) + sum(r is not None and r.status == "renewed"
                                              for r in alone)  # fmt: skip
    assert renewed == len(accounts)
    for account in accounts:
        entries = await free_entries(redis, account)
        assert [(t, r, a) for t, r, a, _ in entries[2:]] == [
            ("free_quota_expired", f"free-renew:{month}:ai", 2 * USD),
            ("free_quota", f"free-renew:{month}:ai", 2 * USD),
            ("free_quota_expired", f"free-renew:{month}:cloud", USD // 2),
            ("free_quota", f"free-renew:{month}:cloud", USD // 2),
        ]
    # A replay that finds the wallet's month lost (or a crash before it was written): the
    # order keys alone keep it from renewing again.
    await redis.hdel(AccountKeys(accounts[0]).wallet, "free_month")
    again = await renewer(redis, january).renew(await directory.get_account(accounts[0]), month)
    assert again is not None and again.status == "current"
    assert len(await free_entries(redis, accounts[0])) == 6
    assert await redis.hget(AccountKeys(accounts[0]).wallet, "free_month") == month
    # A month that has not begun by the script's clock is not renewed into.
    early = await renewer(redis, january).renew(await directory.get_account(accounts[1]),
                                                month_of(await month_start(redis, 2)))  # fmt: skip
    assert early is not None and early.status == "early"


async def test_once_plans_and_plans_without_quota_never_renew(
    gw: Gateway, redis: Any, upstream: FakeUpstream
) -> None:
    trial, _ = await make(gw, "trial")
    default, _ = await make(gw, "default")
    moved, key = await make(gw, "free")
    await spend(gw, key)
    status, _ = await gw.admin("PATCH", f"/admin/accounts/{moved}", {"plan": "pro"})
    assert status == 200
    january = await month_start(redis, 1)
    assert await renewer(redis, january).renew_all(month_of(january)) == (0, True)
    assert (await gw.wallet(trial))["free_quota"] == "0.50"
    assert (await gw.wallet(default))["free_quota"] == "0.00"
    # Moved from free to pro (no quota): what was left of the free quota stays until spent.
    assert (await gw.wallet(moved))["free_quota"] == "0.998"
    for account in (trial, default, moved):
        assert [t for t, *_ in await free_entries(redis, account)] in (["free_quota"], [])
        assert await redis.hget(AccountKeys(account).wallet, "free_month") is None


async def test_a_hold_open_at_the_turn_is_paid_from_the_new_months_quota(
    gw: Gateway, redis: Any
) -> None:
    wallet, straddle = gw.app[WALLET], new_request_id()
    account, _ = await make(gw, "free")
    await hold(wallet, account, straddle, 300_000_000)
    january = await month_start(redis, 1)
    assert await renewer(redis, january).renew_all(month_of(january)) == (1, True)
    view = await wallet.view(account)
    assert (view.free_ai, view.held, view.balance) == (USD, 300_000_000, 700_000_000)
    assert (await settle(wallet, account, straddle, 250_000_000)).cost == 250_000_000
    view = await wallet.view(account)
    assert (view.free_ai, view.held, view.balance) == (750_000_000, 0, 750_000_000)


async def test_a_quota_that_shrinks_under_an_open_hold_leaves_a_debt_of_the_difference(
    gw: Gateway, redis: Any
) -> None:
    """Renewal resets the quota under open holds; when the new quota is smaller than what the
    holds set aside, the balance goes below 0, and the request still pays its own hold in full
    (strict cuts only beyond it): the part no quota covers is taken from cash, below 0."""
    wallet, big = gw.app[WALLET], new_request_id()
    account, _ = await make(gw, "team")  # 2.00 of AI quota
    await hold(wallet, account, big, 3 * USD // 2)
    status, _ = await gw.admin("PATCH", f"/admin/accounts/{account}", {"plan": "free"})
    assert status == 200
    january = await month_start(redis, 1)
    assert await renewer(redis, january).renew_all(month_of(january)) == (1, True)
    view = await wallet.view(account)
    assert (view.free_ai, view.held, view.balance) == (USD, 3 * USD // 2, -USD // 2)
    settled = await settle(wallet, account, big, 3 * USD // 2)
    assert (settled.cost, settled.shortfall) == (3 * USD // 2, 0)
    view = await wallet.view(account)
    assert (view.free_ai, view.cash, view.balance) == (0, -USD // 2, -USD // 2)


async def test_the_gateways_own_loop_renews_when_its_clock_enters_a_new_month(
    make_gateway: GatewayFactory, redis: Any, upstream: FakeUpstream
) -> None:
    gw, other = [await make_gateway(plans=PLANS, free_renewal_interval=0.05) for _ in "ab"]
    account, key = await make(gw, "free")
    await spend(gw, key)
    await asyncio.sleep(0.2)  # the loop's walk at start: this month's quota is current
    assert (await gw.wallet(account))["free_quota"] == "0.998"
    january = await month_start(redis, 1)
    for each in (gw, other):  # the month boundary passes, for both (one holds the lease)
        each.app[FREE_RENEWAL].clock = lambda: january
    for _ in range(100):
        if (await gw.wallet(account))["free_quota"] == "1.00":
            break
        await asyncio.sleep(0.05)
    assert (await gw.wallet(account))["free_quota"] == "1.00"
    assert [t for t, *_ in await free_entries(redis, account)] == [
        "free_quota", "free_quota_expired", "free_quota"]  # fmt: skip
    await asyncio.sleep(0.2)  # more rounds in the same month renew nothing more
    assert len(await free_entries(redis, account)) == 3
    for _ in range(50):  # and the global ledger feed has the renewal (the relay was told)
        async with gw.http.get(gw.url + "/admin/ledger", headers=gw.admin_headers) as r:
            feed = [json.loads(line) for line in (await r.text()).splitlines()]
        if any(e["type"] == "free_quota_expired" for e in feed):
            break
        await asyncio.sleep(0.1)
    expired = [e for e in feed if e["type"] == "free_quota_expired"]
    assert [(e["account"], e["amount"], e["source"]["free_quota"]) for e in expired] == [
        (account, "0.998", "0.998")]  # fmt: skip
    assert await redis.hget(AccountKeys(account).wallet, "free_month") == month_of(january)
