"""The Lua money moves, driven directly through `Wallet` against a real Redis: through redis-py
(single Redis and Cluster) and through the lean client (single Redis), with one error mapping."""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway import errors
from gateway.billing.accounts import Directory
from gateway.billing.ledger import admission_field, outcome_field, usage_field
from gateway.billing.lua_scripts import all_sources, script_source
from gateway.billing.records import new_request_id
from gateway.billing.wallet import Admission, Limits, Refusal, Wallet
from gateway.store.fast_client import FastScripts
from gateway.store.keys import AccountKeys
from gateway.store.redis_errors import StoreRefused
from pricing import Usage

pytestmark = pytest.mark.redis_cluster_too

NO_LIMITS = Limits()


@pytest.fixture(params=["redis-py", "lean"])
async def funded(
    request: pytest.FixtureRequest, redis: Any, redis_target: Any
) -> AsyncIterator[tuple[Wallet, str]]:
    scripts = None
    if request.param == "lean":
        if not FastScripts.supports(redis_target.url) or redis_target.cluster:
            pytest.skip("the lean client speaks plain TCP to a single Redis; else redis-py")
        scripts = FastScripts(redis_target.url, all_sources())
    account = await Directory(redis).create_account({"name": "t", "plan": "p"})
    wallet = Wallet(redis, scripts)
    await wallet.move_money(account.id, kind="topup", amount=1_000_000, order_id="seed")
    yield wallet, account.id
    if scripts is not None:
        await scripts.aclose()


async def admit(wallet: Wallet, account: str, rid: str, hold: int, ttl_ms: int = 60_000,
                policy: str = "strict") -> Admission | Refusal:  # fmt: skip
    return await wallet.admit(
        account, request_id=rid, key_id="k", hold=hold, policy=policy, est_tokens=10,
        limits=NO_LIMITS, hold_ttl_ms=ttl_ms, record_ttl=60, record={"model": "m"},
    )  # fmt: skip


async def settle(wallet: Wallet, account: str, rid: str, cost: int) -> Any:
    return await wallet.settle(
        account, request_id=rid, key_id="k", cost=cost, tokens=5, limits=NO_LIMITS,
        record_ttl=60,
    )  # fmt: skip


async def test_settle_is_idempotent_even_when_retried_concurrently(
    funded: tuple[Wallet, str],
) -> None:
    wallet, account = funded
    assert isinstance(await admit(wallet, account, "r1", hold=500_000), Admission)
    results = await asyncio.gather(*(settle(wallet, account, "r1", 123_456) for _ in range(20)))
    assert sum(1 for r in results if not r.replayed) == 1
    assert {r.cost for r in results} == {123_456}
    view = await wallet.view(account)
    assert (view.balance, view.held, view.charges) == (1_000_000 - 123_456, 0, 123_456)


async def test_settle_of_an_unknown_request_charges_nothing(funded: tuple[Wallet, str]) -> None:
    wallet, account = funded
    assert await settle(wallet, account, "never-admitted", 999) is None
    assert (await wallet.view(account)).balance == 1_000_000


async def test_a_release_arriving_before_its_admission_makes_it_place_no_hold(
    funded: tuple[Wallet, str],
) -> None:
    """An admission whose reply was lost is released at no cost; on a stalled connection
    the admission itself may reach Redis after that release."""
    wallet, account = funded
    assert await settle(wallet, account, "lost-reply", 0) is None  # the release, first
    with pytest.raises(RuntimeError):  # the late admission: the id is used, no hold placed
        await admit(wallet, account, "lost-reply", hold=400_000)
    view = await wallet.view(account)
    assert (view.balance, view.held, view.charges) == (1_000_000, 0, 0)
    assert await wallet.request_view(account, "lost-reply") is None  # never admitted


async def test_a_release_arriving_after_its_admission_frees_the_hold_now(
    funded: tuple[Wallet, str],
) -> None:
    wallet, account = funded
    assert isinstance(await admit(wallet, account, "lost-reply", hold=400_000), Admission)
    assert (await wallet.view(account)).held == 400_000
    released = await settle(wallet, account, "lost-reply", 0)
    assert released is not None and released.cost == 0
    view = await wallet.view(account)
    assert (view.balance, view.held, view.charges) == (1_000_000, 0, 0)


async def test_a_pending_request_is_charged_however_long_it_ran(
    redis: Any, funded: tuple[Wallet, str]
) -> None:
    """The pending record has no expiry: a settle replayed from a journal long after its
    admission (record_ttl long past) still finds it and charges it."""
    wallet, account = funded
    await wallet.admit(
        account, request_id="long", key_id="k", hold=500, policy="strict", est_tokens=10,
        limits=NO_LIMITS, hold_ttl_ms=60_000, record_ttl=1, record={"model": "m"},
    )  # fmt: skip
    record = AccountKeys(account).request("long")
    assert await redis.ttl(record) == -1
    settled = await settle(wallet, account, "long", 300)
    assert settled is not None and settled.cost == 300
    assert 0 < await redis.ttl(record) <= 60


async def test_month_spend_follows_redis_clock(redis: Any, funded: tuple[Wallet, str]) -> None:
    wallet, account = funded
    await admit(wallet, account, "m1", hold=100)
    await settle(wallet, account, "m1", 100)
    seconds, _ = await redis.time()
    fields = await redis.hgetall(AccountKeys(account).wallet)
    months = [name for name in fields if name.startswith("spend:")]
    assert months == ["spend:" + time.strftime("%Y-%m", time.gmtime(seconds))]
    assert (await wallet.view(account)).month_spend == 100


async def test_hold_reserves_and_strict_refuses_what_is_held(funded: tuple[Wallet, str]) -> None:
    wallet, account = funded
    first = await admit(wallet, account, "a", hold=700_000)
    assert isinstance(first, Admission) and first.available == 300_000
    refused = await admit(wallet, account, "b", hold=400_000)
    assert isinstance(refused, Refusal) and refused.available == 300_000
    postpaid = await admit(wallet, account, "c", hold=400_000, policy="postpaid")
    assert isinstance(postpaid, Admission) and postpaid.hold == 300_000


async def test_expired_hold_is_released_once_and_a_late_settle_still_charges_once(
    funded: tuple[Wallet, str],
) -> None:
    wallet, account = funded
    assert isinstance(await admit(wallet, account, "slow", hold=600_000, ttl_ms=50), Admission)
    await asyncio.sleep(0.1)
    released = await asyncio.gather(*(wallet.sweep(account) for _ in range(10)))
    assert sum(released) == 1
    assert (await wallet.view(account)).held == 0
    # The request finished after all (its process was only slow): it is charged, once.
    assert (await settle(wallet, account, "slow", 1000)).replayed is False
    assert (await settle(wallet, account, "slow", 1000)).replayed is True
    view = await wallet.view(account)
    assert (view.balance, view.held) == (999_000, 0)


async def test_a_request_id_cannot_be_admitted_twice(funded: tuple[Wallet, str]) -> None:
    wallet, account = funded
    await admit(wallet, account, "dup", hold=1)
    with pytest.raises(RuntimeError):
        await admit(wallet, account, "dup", hold=1)
    await settle(wallet, account, "dup", 0)


async def test_scripts_survive_a_script_flush(redis: Any, funded: tuple[Wallet, str]) -> None:
    wallet, account = funded
    await redis.script_flush()  # as after a Redis restart or failover: NOSCRIPT, then reload
    assert isinstance(await admit(wallet, account, "after-flush", hold=10), Admission)
    assert (await settle(wallet, account, "after-flush", 10)).cost == 10


async def test_malformed_arguments_fail_before_anything_is_written(
    redis: Any, funded: tuple[Wallet, str]
) -> None:
    """A caller's bug (here a record ttl that is not an integer) must not leave half an admit
    or half a settle: the scripts check every argument before their first write."""
    wallet, account = funded
    with pytest.raises(StoreRefused, match="malformed"):
        await wallet.admit(
            account, request_id="bad", key_id="k", hold=100, policy="strict", est_tokens=10,
            limits=NO_LIMITS, hold_ttl_ms=60_000, record_ttl="1.5", record={"model": "m"},  # type: ignore[arg-type]
        )  # fmt: skip
    assert await wallet.request_view(account, "bad") is None
    assert (await wallet.view(account)).held == 0

    await admit(wallet, account, "r", hold=500)
    with pytest.raises(StoreRefused, match="malformed"):
        await wallet.settle(
            account, request_id="r", key_id="k", cost=300, tokens=5, limits=NO_LIMITS,
            record_ttl="1.5",  # type: ignore[arg-type]
        )  # fmt: skip
    view = await wallet.view(account)
    assert (view.balance, view.held, view.charges) == (1_000_000 - 500, 500, 0)
    assert (await settle(wallet, account, "r", 300)).cost == 300


async def test_lua_month_of_agrees_with_the_calendar(redis: Any, redis_target: Any) -> None:
    """The prelude's days-to-civil arithmetic against Python's calendar: month edges from 1970
    to 2200, leap days and century years included."""
    if redis_target.cluster:
        pytest.skip("pure arithmetic: one Redis is enough")
    prelude = script_source("sweep_v3").split("-- sweep_v3", 1)[0]
    probe = (
        prelude
        + """
local out = {}
for i, ms in ipairs(ARGV) do out[i] = month_of(tonumber(ms)) end
return out
"""
    )
    instants = []
    for year in (*range(1970, 2040), 2096, 2100, 2104, 2199):
        for month in range(1, 13):
            start = calendar.timegm((year, month, 1, 0, 0, 0))
            instants += [start * 1000, start * 1000 - 1, start * 1000 + 86_399_999]
    got = await redis.eval(probe, 0, *instants)
    want = [time.strftime("%Y-%m", time.gmtime(ms / 1000)) for ms in instants]
    assert got == want


async def test_a_request_is_found_in_the_ledger_after_its_marker_expired(
    funded: tuple[Wallet, str],
) -> None:
    """The record of a settled request is its ledger entry; past ``record_ttl`` (its marker
    gone) the id's admission time still finds it."""
    wallet, account = funded
    rid = new_request_id()
    await wallet.admit(
        account, request_id=rid, key_id="k1", hold=900, policy="strict", est_tokens=10,
        limits=NO_LIMITS, hold_ttl_ms=60_000, record_ttl=1,
        record={"k": "k1", "p": "proj", "m": "gpt-x",
                "x": admission_field("/chat/completions", True, "v1", None)},
    )  # fmt: skip
    for n in range(5):  # other requests settle around it
        await admit(wallet, account, f"other-{n}", hold=1)
        await settle(wallet, account, f"other-{n}", 1)
    await wallet.settle(
        account, request_id=rid, key_id="k1", cost=777, tokens=5, limits=NO_LIMITS,
        record_ttl=1, usage=usage_field(Usage(input_tokens=3, output_tokens=2)),
        outcome=outcome_field("settled", "upstream", 200, 123),
    )  # fmt: skip
    fresh = await wallet.request_view(account, rid)
    await asyncio.sleep(1.2)  # the marker expires
    old = await wallet.request_view(account, rid)
    assert fresh == old and old is not None
    assert (old["status"], old["model"], old["project"], old["key_id"]) == (
        "settled", "gpt-x", "proj", "k1")  # fmt: skip
    assert (old["cost"], old["held"], old["usage"]["total_tokens"]) == (
        "0.000000777",
        "0.0000009",
        5,
    )
    assert old["cost_by_source"] == {"free_quota": "0.00", "credits": "0.00",
                                     "cash": "0.000000777"}  # fmt: skip
    assert (old["stream"], old["price_version"], old["finished_ms"]) == (True, "v1", 123)


async def test_an_order_replay_needs_no_transactions_stream(
    redis: Any, funded: tuple[Wallet, str]
) -> None:
    """Idempotency lives with the order, apart from the streams: trimming the transactions
    stream by age cannot turn a replayed top-up into a second one."""
    wallet, account = funded
    first, replayed = await wallet.move_money(account, kind="topup", amount=500, order_id="o-1")
    assert not replayed
    await redis.xtrim(AccountKeys(account).transactions, maxlen=0)  # as if trimmed by age
    again, replayed = await wallet.move_money(account, kind="topup", amount=500, order_id="o-1")
    assert replayed and again == first
    with pytest.raises(errors.Conflict):
        await wallet.move_money(account, kind="refund", amount=500, order_id="o-1")
    assert (await wallet.view(account)).cash == 1_000_000 + 500
    assert await redis.ttl(AccountKeys(account).order("o-1")) > 0
