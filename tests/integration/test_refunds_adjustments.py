"""Refunds against the top-ups they return, and adjustments (issue 18).

Each top-up is a lot of cash, spent oldest first; a refund returns what one named top-up has
left unspent (never more, and never the cash open requests hold), or without a name the newest
top-ups' first; an adjustment adds or takes cash with a reason and the operator who made it.
Every call is idempotent on its order id. The identity per kind (and that the lots hold the
cash) is the redis fixture's check, after every test."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import pytest

from gateway.store.keys import AccountKeys
from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.redis_cluster_too

FLAT = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]}  # 0.002 each


async def topup(gw: Gateway, account: str, amount: str, order_id: str) -> dict[str, Any]:
    status, body = await gw.admin("POST", f"/admin/accounts/{account}/topups",
                                  {"amount": amount, "order_id": order_id})  # fmt: skip
    assert status == 201, body
    return body  # type: ignore[no-any-return]


async def refund(gw: Gateway, account: str, amount: str, order_id: str,
                 **fields: Any) -> tuple[int, Any]:  # fmt: skip
    return await gw.admin("POST", f"/admin/accounts/{account}/refunds",
                          {"amount": amount, "order_id": order_id, **fields})  # fmt: skip


async def adjust(gw: Gateway, account: str, amount: str, order_id: str,
                 **fields: Any) -> tuple[int, Any]:  # fmt: skip
    body = {"amount": amount, "order_id": order_id, "reason": "support ticket 7",
            "operator": "ana", **fields}  # fmt: skip
    return await gw.admin("POST", f"/admin/accounts/{account}/adjustments", body)


async def spend(gw: Gateway, key: str, times: int) -> None:
    for _ in range(times):
        async with gw.http.post(gw.url + "/v1/chat/completions", json=FLAT,
                                headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
            assert r.status == 200, await r.text()


async def test_a_refund_returns_what_its_top_up_has_left_spent_oldest_first(
    gateway: Gateway, upstream: FakeUpstream, redis: Any
) -> None:
    account, key = await gateway.account(topup=None)
    await topup(gateway, account, "0.01", "first")
    await topup(gateway, account, "0.02", "second")
    await spend(gateway, key, 7)  # 0.014: all of "first", 0.004 of "second"

    status, body = await refund(gateway, account, "0.001", "r1", topup="first")
    assert status == 400 and body["error"]["param"] == "amount", body
    assert "'first' has left unspent and unrefunded, 0.00 USD" in body["error"]["message"]
    status, body = await refund(gateway, account, "0.017", "r2", topup="second")
    assert status == 400 and "0.016 USD" in body["error"]["message"], body

    status, body = await refund(gateway, account, "0.006", "r3", topup="second")
    assert status == 201, body
    assert body["topups"] == [{"order_id": "second", "amount": "0.006"}], body
    status, again = await refund(gateway, account, "0.006", "r3", topup="second")
    assert status == 200 and again["id"] == body["id"]  # a replay: the same transaction
    wallet = await gateway.wallet(account)
    assert wallet["cash"] == "0.01", wallet

    status, body = await refund(gateway, account, "0.011", "r4")
    assert status == 400 and "0.01 USD" in body["error"]["message"], body
    status, body = await refund(gateway, account, "0.01", "r5")
    assert status == 201 and body["topups"] == [{"order_id": "second", "amount": "0.01"}]
    assert (await gateway.wallet(account))["cash"] == "0.00"

    entries = [f for _, f in await redis.xrange(AccountKeys(account).ledger)
               if f["t"] == "refund"]  # fmt: skip
    assert [e["l"] for e in entries] == ['[["second","6000000"]]', '[["second","10000000"]]']


async def test_a_refund_without_a_top_up_takes_the_newest_first_across_several(
    gateway: Gateway,
) -> None:
    account, _ = await gateway.account(topup=None)
    for n, amount in enumerate(("1.00", "2.00", "3.00")):
        await topup(gateway, account, amount, f"t{n}")
    status, body = await refund(gateway, account, "4.50", "back")
    assert status == 201, body
    assert body["topups"] == [{"order_id": "t2", "amount": "3.00"},
                              {"order_id": "t1", "amount": "1.50"}]  # fmt: skip
    status, body = await refund(gateway, account, "1.00", "again", topup="t1")
    assert status == 400 and "0.50 USD" in body["error"]["message"], body


async def test_a_refund_names_only_a_top_up_of_this_account(gateway: Gateway) -> None:
    account, _ = await gateway.account(topup="5.00")
    other, _ = await gateway.account(topup=None)
    await topup(gateway, other, "5.00", "theirs")
    for name in ("nonexistent", "theirs"):
        status, body = await refund(gateway, account, "1.00", f"r-{name}", topup=name)
        assert status == 400 and body["error"]["param"] == "topup", body
    status, _ = await adjust(gateway, account, "1.00", "adj-1")
    assert status == 201
    status, body = await refund(gateway, account, "1.00", "r-adj", topup="adj-1")
    assert status == 400 and body["error"]["param"] == "topup", body
    assert (await gateway.wallet(account))["cash"] == "6.00"


async def test_a_refund_leaves_the_cash_open_requests_hold(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account(topup=None)
    order = await topup(gateway, account, "0.01", "only")
    upstream.gate = asyncio.Event()  # the stream stays open, holding its worst case
    task = gateway.http.post(gateway.url + "/v1/chat/completions", json={**FLAT, "stream": True},
                             headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    async with task as pending:
        wallet = await gateway.wallet(account)
        held = wallet["held"]
        assert held != "0.00", wallet
        status, body = await refund(gateway, account, "0.01", "all", topup="only")
        assert status == 400 and wallet["balance"] in body["error"]["message"], body
        upstream.gate.set()
        assert pending.status == 200
        await pending.read()
    assert order["receipt_number"] == 1


async def test_adjustments_add_and_take_cash_with_a_reason_and_an_operator(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account(topup=None)
    await topup(gateway, account, "0.01", "paid")
    status, plus = await adjust(gateway, account, "0.004", "goodwill")
    assert status == 201, plus
    assert (plus["type"], plus["amount"], plus["reason"], plus["operator"]) == (
        "adjustment", "0.004", "support ticket 7", "ana")
    status, minus = await adjust(gateway, account, "-0.002", "fee")
    assert status == 201 and minus["amount"] == "-0.002", minus
    assert (await gateway.wallet(account))["cash"] == "0.012"

    status, body = await adjust(gateway, account, "-1.00", "too-much")
    assert status == 400 and "0.012 USD" in body["error"]["message"], body
    good = {"amount": "1.00", "order_id": "bad", "reason": "r", "operator": "ana"}
    for bad in ({"reason": ""}, {"reason": None}, {"operator": ""}, {"amount": "0"},
                {"amount": 1.5}, {"amount": "abc"}, {"order_id": None}):  # fmt: skip
        status, body = await gateway.admin(
            "POST", f"/admin/accounts/{account}/adjustments", {**good, **bad})
        assert status == 400, (bad, body)
    status, body = await adjust(gateway, account, "0.005", "goodwill")
    assert status == 409, body  # the same order id with another amount
    status, again = await adjust(gateway, account, "0.004", "goodwill")
    assert status == 200 and again["id"] == plus["id"]

    await spend(gateway, key, 3)  # 0.006 from the oldest lot first: "paid" has 0.002 left
    status, body = await refund(gateway, account, "0.003", "r", topup="paid")
    assert status == 400 and "0.002 USD" in body["error"]["message"], body
    status, body = await refund(gateway, account, "0.002", "r", topup="paid")
    assert status == 201, body
    status, body = await refund(gateway, account, "0.001", "r2")  # what is left came free
    assert status == 400 and "0.00 USD" in body["error"]["message"], body
    wallet = await gateway.wallet(account)
    assert wallet["cash"] == "0.004", wallet


async def test_transactions_list_adjustments_and_receipts_as_json_and_csv(
    gateway: Gateway,
) -> None:
    account, _ = await gateway.account(topup=None)
    await topup(gateway, account, "2.00", "a")
    await topup(gateway, account, "3.00", "b")
    await adjust(gateway, account, "-1.00", "fee")
    status, page = await gateway.admin(
        "GET", f"/admin/accounts/{account}/transactions?type=adjustment")
    assert status == 200 and [t["order_id"] for t in page["data"]] == ["fee"], page
    status, page = await gateway.admin("GET", f"/admin/accounts/{account}/transactions")
    assert [t.get("receipt_number") for t in page["data"]] == [None, 2, 1], page
    async with gateway.http.get(
        gateway.url + f"/admin/accounts/{account}/transactions?format=csv",
        headers=gateway.admin_headers,
    ) as r:
        rows = list(csv.DictReader(io.StringIO(await r.text())))
    assert [(row["type"], row["amount"], row["receipt_number"], row["operator"])
            for row in rows] == [("adjustment", "-1.00", "", "ana"), ("topup", "3.00", "2", ""),
                                 ("topup", "2.00", "1", "")]  # fmt: skip


async def test_a_wallet_from_before_lots_refunds_its_cash(gateway: Gateway, redis: Any) -> None:
    """Cash a wallet had before cash lots existed becomes one refundable lot at its next move."""
    account, _ = await gateway.account(topup=None)
    k = AccountKeys(account)
    await redis.hset(k.wallet, mapping={"cash": 5 * 10**9, "topups": 5 * 10**9})
    await redis.xadd(k.ledger, {"t": "topup", "r": "old", "a": str(5 * 10**9),
                                        "s": f"0,0,{5 * 10**9}", "b": "0", "n": ""})  # fmt: skip
    status, body = await refund(gateway, account, "2.00", "r")
    assert status == 201 and body["topups"] == [{"order_id": None, "amount": "2.00"}], body
    assert (await gateway.wallet(account))["cash"] == "3.00"
