"""Vouchers (issue 18): an operator makes a code; a customer's key redeems it once per account
for a credit grant; a code with one use left is redeemed once across 50 concurrent tries;
unknown, used-up and expired codes are 400 voucher_invalid."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.redis_cluster_too


async def redeem(gw: Gateway, key: str, code: str) -> tuple[int, Any]:
    async with gw.http.post(gw.url + "/v1/wallet/redeem", json={"code": code},
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        return r.status, await r.json()


async def voucher(gw: Gateway, **terms: Any) -> str:
    status, body = await gw.admin("POST", "/admin/vouchers", terms)
    assert status == 201, body
    return str(body["code"])


async def test_a_voucher_grants_its_credit_once_per_account(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
    code = await voucher(gateway, amount="5.00", max_redemptions=2, credit_expires_at=ends)
    assert code.startswith("TG-")
    account, key = await gateway.account(topup=None)
    status, txn = await redeem(gateway, key, code.lower())  # codes are read in any case
    assert status == 201 and txn["type"] == "credit" and txn["amount"] == "5.00", txn
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "5.00"
    assert wallet["credit_grants"][0]["expires_at"].startswith(ends[:-1]), wallet
    status, body = await redeem(gateway, key, code)
    assert status == 400 and body["error"]["code"] == "voucher_invalid", body
    assert "already" in body["error"]["message"]
    assert (await gateway.wallet(account))["balance"] == "5.00"
    _, other = await gateway.account(topup=None)
    assert (await redeem(gateway, other, code))[0] == 201
    _, third = await gateway.account(topup=None)
    status, body = await redeem(gateway, third, code)
    assert status == 400 and "used up" in body["error"]["message"], body


async def test_the_last_use_goes_to_one_of_fifty_concurrent_accounts(gateway: Gateway) -> None:
    code = await voucher(gateway, amount="1.00", max_redemptions=1)
    keys = [(await gateway.account(topup=None))[1] for _ in range(50)]
    results = await asyncio.gather(*(redeem(gateway, key, code) for key in keys))
    assert sorted(status for status, _ in results).count(201) == 1
    assert {status for status, _ in results} == {201, 400}


async def test_unknown_expired_and_malformed_codes_are_refused(gateway: Gateway) -> None:
    _, key = await gateway.account(topup=None)
    for code in ("TG-NOPE-NOPE-NOPE", "x", "'; DROP", ""):
        status, body = await redeem(gateway, key, code)
        assert status == 400 and body["error"]["code"] == "voucher_invalid", (code, body)
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
    code = await voucher(gateway, amount="1.00", valid_until=soon, code="SPRING-2027")
    assert code == "SPRING-2027"
    await asyncio.sleep(1.6)
    status, body = await redeem(gateway, key, code)
    assert status == 400 and "last day" in body["error"]["message"], body
    status, body = await gateway.admin("POST", "/admin/vouchers",
                                       {"amount": "1.00", "code": "SPRING-2027"})  # fmt: skip
    assert status == 409, body
    status, body = await gateway.admin("POST", "/admin/vouchers",
                                       {"amount": "1.00", "max_redemptions": 0})  # fmt: skip
    assert status == 400 and body["error"]["param"] == "max_redemptions"
