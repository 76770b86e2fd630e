"""Credits on the wallet (issue 18): grants with priority and an end, drained before cash in
one Lua call with the charge; what is left at the end leaves once, through credit_expired,
also when the grant ends under an open hold. The identity per kind is the redis fixture's."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.store.keys import AccountKeys
from pricing import parse_usd
from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.redis_cluster_too

FLAT = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]}  # 0.002 each


async def call(gw: Gateway, key: str, body: dict[str, Any] = FLAT) -> tuple[int, dict[str, str]]:
    async with gw.http.post(gw.url + "/v1/chat/completions", json=body,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        await r.read()
        return r.status, {k.lower(): v for k, v in r.headers.items()}


async def grant(gw: Gateway, account: str, amount: str, order_id: str, **terms: Any) -> Any:
    status, body = await gw.admin("POST", f"/admin/accounts/{account}/credits",
                                  {"amount": amount, "order_id": order_id, **terms})  # fmt: skip
    assert status == 201, body
    return body


def rfc3339(seconds_from_now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds_from_now))


async def test_credits_are_spent_before_cash_by_priority_then_soonest_end(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account(topup="1.00")
    await grant(gateway, account, "0.003", "promo", expires_at=rfc3339(3600))
    await grant(gateway, account, "0.001", "vip", priority=5)
    await grant(gateway, account, "0.010", "later", expires_at=rfc3339(7200))
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "1.014" and wallet["credits"] == "0.014", wallet
    assert [g["id"] for g in wallet["credit_grants"]] == ["vip", "promo", "later"]

    status, headers = await call(gateway, key)
    assert status == 200
    rec = await gateway.record(key, headers["x-request-id"])
    assert rec["cost_by_source"] == {"free_quota": "0.00", "credits": "0.002", "cash": "0.00"}
    assert rec["cost_by_grant"] == {"vip": "0.001", "promo": "0.001"}, rec
    for _ in range(6):  # 0.012 more: promo's 0.002, later's 0.010, then cash
        assert (await call(gateway, key))[0] == 200
    wallet = await gateway.wallet(account)
    assert wallet["credits"] == "0.00" and wallet["credit_grants"] == []
    assert wallet["cash"] == "1.00" and wallet["balance"] == "1.00", wallet
    status, headers = await call(gateway, key)
    rec = await gateway.record(key, headers["x-request-id"])
    assert rec["cost_by_source"]["cash"] == "0.002" and rec["cost_by_grant"] == {}
    status, txns = await gateway.admin("GET", f"/admin/accounts/{account}/transactions")
    assert [t["type"] for t in txns["data"]] == ["credit", "credit", "credit", "topup"]


async def test_credits_admit_a_request_and_are_never_refunded(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account(topup=None)
    assert (await call(gateway, key))[0] == 403  # nothing to spend
    await grant(gateway, account, "0.005", "welcome")
    assert (await call(gateway, key))[0] == 200
    status, body = await gateway.admin("POST", f"/admin/accounts/{account}/refunds",
                                       {"amount": "0.001", "order_id": "r1"})  # fmt: skip
    assert status == 400 and "unspent cash" in body["error"]["message"], body
    status, body = await gateway.admin("POST", f"/admin/accounts/{account}/credits",
                                       {"amount": "1.00", "order_id": "x", "priority": 10000})
    assert status == 400 and body["error"]["param"] == "priority"
    status, body = await gateway.admin("POST", f"/admin/accounts/{account}/credits",
                                       {"amount": "1.00", "order_id": "a;b"})  # fmt: skip
    assert status == 400 and body["error"]["param"] == "order_id"


async def test_a_grant_past_its_end_leaves_once_through_credit_expired(
    gateway: Gateway, upstream: FakeUpstream, redis: Any
) -> None:
    account, _ = await gateway.account(topup="0.01")
    await grant(gateway, account, "0.50", "short", expires_at=rfc3339(1.5))
    assert (await gateway.wallet(account))["balance"] == "0.51"
    await asyncio.sleep(2.1)
    for _ in range(3):  # each read sweeps; the grant leaves exactly once
        wallet = await gateway.wallet(account)
        assert wallet["balance"] == "0.01" and wallet["credits"] == "0.00", wallet
    entries = [f for _, f in await redis.xrange(AccountKeys(account).ledger)]
    expired = [f for f in entries if f["t"] == "credit_expired"]
    assert len(expired) == 1 and expired[0]["r"] == "short" and expired[0]["a"] == "500000000"
    _, txns = await gateway.admin("GET", f"/admin/accounts/{account}/transactions")
    assert txns["data"][0]["type"] == "credit_expired"


async def test_a_grant_that_ends_under_an_open_hold_pays_that_request_then_leaves_once(
    gateway: Gateway, upstream: FakeUpstream, redis: Any
) -> None:
    """Admitted while the grant was live, the request may still draw on it after its end; no
    new request may; once the request is settled, the rest leaves in one credit_expired."""
    account, key = await gateway.account(topup=None)
    await grant(gateway, account, "1.00", "ending", expires_at=rfc3339(2))
    upstream.gate = asyncio.Event()  # the stream waits after its first chunk
    body = {"model": "gpt-4o-mini", "stream": True, "max_tokens": 50,
            "messages": [{"role": "user", "content": "hello"}]}  # fmt: skip
    async with gateway.http.post(gateway.url + "/v1/chat/completions", json=body,
                                 headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        assert r.status == 200
        rid = r.headers["X-Request-Id"]
        await r.content.readuntil(b"\n\n")
        await asyncio.sleep(2.6)  # the grant has ended; the request is still open
        assert (await call(gateway, key))[0] == 403  # the ending grant backs no new request
        wallet = await gateway.wallet(account)
        assert wallet["credits"] == "0.00" and parse_usd(wallet["held"]) > 0, wallet
        upstream.gate.set()
        await r.read()
    rec = await gateway.record(key, rid)
    assert rec["status"] == "settled" and rec["cost_by_grant"] == {
        "ending": rec["cost"]}, rec  # paid by the ended grant
    wallet = await gateway.wallet(account)
    assert wallet["held"] == "0.00" and wallet["balance"] == "0.00", wallet
    entries = [f for _, f in await redis.xrange(AccountKeys(account).ledger)]
    expired = [f for f in entries if f["t"] == "credit_expired"]
    assert len(expired) == 1
    assert int(expired[0]["a"]) == parse_usd("1.00") - parse_usd(rec["cost"])
