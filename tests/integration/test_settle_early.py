"""An answer whose hold covers its cost goes out before Redis confirms the settle.

The charge is then certain (the settle script cannot cut it), so the client does not wait a
Redis round trip for it; the wallet, read through the gateway right after, already shows it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.store.keys import AccountKeys
from pricing import parse_usd
from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream


async def chat(gw: Gateway, key: str, **extra: Any) -> tuple[int, dict[str, str]]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], **extra}
    async with gw.http.post(gw.url + "/v1/chat/completions", json=body,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        await r.read()
        return r.status, {k.lower(): v for k, v in r.headers.items()}


async def test_balance_remaining_is_the_wallet_after_each_request(gateway: Gateway) -> None:
    account, key = await gateway.account(topup="1.00")
    spent = 0
    for max_tokens in (5, 50, 500):
        status, headers = await chat(gateway, key, max_tokens=max_tokens)
        assert status == 200
        spent += parse_usd(headers["x-usage-cost"])
        wallet = await gateway.wallet(account)
        assert headers["x-balance-remaining"] == wallet["balance"]
        assert parse_usd(wallet["balance"]) == parse_usd("1.00") - spent
        assert wallet["held"] == "0.00"


async def test_answer_does_not_wait_for_the_settle_reply(
    gateway: Gateway, redis: Any, upstream: FakeUpstream
) -> None:
    info = await redis.info("server")
    if int(str(info["redis_version"]).split(".")[0]) < 7:
        pytest.skip("CLIENT PAUSE WRITE pauses scripts only from Redis 7")  # pragma: no cover
    account, key = await gateway.account(topup="1.00")
    upstream.delay = 0.3  # time to pause Redis's writes while the upstream works

    async def pause_during_upstream() -> None:
        await asyncio.sleep(0.15)  # admitted (the hold is placed), upstream still answering
        await redis.execute_command("CLIENT", "PAUSE", 800, "WRITE")

    pauser = asyncio.create_task(pause_during_upstream())
    t0 = time.monotonic()
    status, headers = await chat(gateway, key, max_tokens=20)
    answered = time.monotonic() - t0
    await pauser
    assert status == 200
    assert answered < 0.15 + 0.8 - 0.1, answered  # not held back until the pause ended
    k = AccountKeys(account)
    assert int(await redis.hget(k.wallet, "held")) > 0  # the settle is still waiting in Redis
    wallet = await gateway.wallet(account)  # waits for this process's settle of the account
    assert time.monotonic() - t0 >= 0.15 + 0.8 - 0.05
    assert wallet["held"] == "0.00"
    cost = parse_usd(headers["x-usage-cost"])
    assert cost > 0
    assert parse_usd(wallet["balance"]) == parse_usd("1.00") - cost
    assert headers["x-balance-remaining"] == wallet["balance"]


async def test_a_cost_above_the_hold_waits_for_the_settle(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """Strict wallet, upstream reports more than the worst case: the settle cuts the charge to
    what the wallet can pay, and the header must show that cut charge, so the answer waits."""
    account, key = await gateway.account(topup="0.000100")
    # 10,000 output tokens for max_tokens 5: above the bound, not absurd (usage_checks), so
    # billed as reported: 0.006, far above the hold and the wallet.
    upstream.usage_override = {"prompt_tokens": 5, "completion_tokens": 10_000,
                               "total_tokens": 10_005}  # fmt: skip
    status, headers = await chat(gateway, key, max_tokens=5)
    assert status == 200
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "0.00"
    assert parse_usd(headers["x-usage-cost"]) == parse_usd("0.000100")  # cut to what was left
    assert headers["x-balance-remaining"] == "0.00"


async def test_a_strict_request_pays_its_own_hold_after_the_wallet_was_overdrawn(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """Found in review: A (postpaid) overdraws the wallet while C, admitted after the account
    was switched to strict, is in flight. C's answer went out early with its cost; settle_v2
    then cut C's charge to 0 (the wallet was below zero). settle_v3 always lets a request pay
    up to its own hold, so the charge is the cost the answer showed."""
    account, key = await gateway.account(topup="1.00", hold_policy="postpaid")
    upstream.delay = 0.3
    upstream.usage_override = {
        "prompt_tokens": 20_000_000,  # prompts are not bounded by max_tokens
        "completion_tokens": 5,
        "total_tokens": 20_000_005,
    }  # $3 on gpt-4o-mini: past the balance
    a = asyncio.create_task(chat(gateway, key, max_tokens=5))
    await asyncio.sleep(0.1)
    status, body = await gateway.admin("PATCH", f"/admin/accounts/{account}",
                                       {"hold_policy": "strict"})  # fmt: skip
    assert status == 200, body
    upstream.delay = 0.8
    c = asyncio.create_task(chat(gateway, key, max_tokens=50))
    status_a, headers_a = await a
    await asyncio.sleep(0.1)
    upstream.usage_override = None  # C is answered with its real, small usage
    status_c, headers_c = await c
    assert (status_a, status_c) == (200, 200)
    record = await gateway.record(key, headers_c["x-request-id"])
    assert record["cost"] == headers_c["x-usage-cost"] != "0.00"
    wallet = await gateway.wallet(account)
    spent = parse_usd(headers_a["x-usage-cost"]) + parse_usd(headers_c["x-usage-cost"])
    assert parse_usd(wallet["balance"]) == parse_usd("1.00") - spent < 0
