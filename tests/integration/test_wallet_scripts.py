"""The Lua money moves, driven directly through `Wallet` against a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.exceptions import ResponseError

from gateway.billing.accounts import Directory
from gateway.billing.wallet import Admission, Limits, Refusal, Wallet

pytestmark = pytest.mark.redis_cluster_too

NO_LIMITS = Limits()


@pytest.fixture
async def funded(redis: Any) -> tuple[Wallet, str]:
    account = await Directory(redis).create_account({"name": "t", "plan": "p"})
    wallet = Wallet(redis)
    await wallet.move_money(account.id, kind="topup", amount=1_000_000, order_id="seed")
    return wallet, account.id


async def admit(wallet: Wallet, account: str, rid: str, hold: int, ttl_ms: int = 60_000,
                policy: str = "strict") -> Admission | Refusal:  # fmt: skip
    return await wallet.admit(
        account, request_id=rid, key_id="k", hold=hold, policy=policy, est_tokens=10,
        limits=NO_LIMITS, hold_ttl_ms=ttl_ms, record_ttl=60, record={"model": "m"},
    )  # fmt: skip


async def settle(wallet: Wallet, account: str, rid: str, cost: int) -> Any:
    return await wallet.settle(
        account, request_id=rid, key_id="k", cost=cost, tokens=5, limits=NO_LIMITS,
        record_ttl=60, record={"status": "settled"},
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
    with pytest.raises(ResponseError, match="malformed"):
        await wallet.admit(
            account, request_id="bad", key_id="k", hold=100, policy="strict", est_tokens=10,
            limits=NO_LIMITS, hold_ttl_ms=60_000, record_ttl="1.5", record={"model": "m"},  # type: ignore[arg-type]
        )  # fmt: skip
    assert await wallet.request_record(account, "bad") is None
    assert (await wallet.view(account)).held == 0

    await admit(wallet, account, "r", hold=500)
    with pytest.raises(ResponseError, match="malformed"):
        await wallet.settle(
            account, request_id="r", key_id="k", cost=300, tokens=5, limits=NO_LIMITS,
            record_ttl="1.5", record={"status": "settled"},  # type: ignore[arg-type]
        )  # fmt: skip
    view = await wallet.view(account)
    assert (view.balance, view.held, view.charges) == (1_000_000 - 500, 500, 0)
    assert (await settle(wallet, account, "r", 300)).cost == 300
