"""The admin API: accounts, keys, idempotent top-ups and refunds, wallets, transactions."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest

from tests.integration.conftest import Gateway

pytestmark = pytest.mark.redis_cluster_too


async def test_admin_requires_the_token(gateway: Gateway) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        async with gateway.http.post(
            gateway.url + "/admin/accounts", json={"name": "x"}, headers=headers
        ) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "invalid_admin_token"


async def test_account_create_get_patch(gateway: Gateway) -> None:
    status, acct = await gateway.admin("POST", "/admin/accounts", {"name": "acme", "plan": "pro"})
    assert status == 201 and acct["name"] == "acme" and acct["plan"] == "pro"
    assert acct["hold_policy"] == "strict"
    status, got = await gateway.admin("GET", f"/admin/accounts/{acct['id']}")
    assert status == 200 and got == acct
    status, patched = await gateway.admin(
        "PATCH",
        f"/admin/accounts/{acct['id']}",
        {"plan": "max", "hold_policy": "postpaid", "rpm": 5},
    )
    assert status == 200
    assert (patched["plan"], patched["hold_policy"], patched["rpm"]) == ("max", "postpaid", 5)
    status, body = await gateway.admin(
        "PATCH", f"/admin/accounts/{acct['id']}", {"hold_policy": "sometimes"}
    )
    assert status == 400 and body["error"]["param"] == "hold_policy"
    status, body = await gateway.admin("PATCH", f"/admin/accounts/{acct['id']}", {"colour": 1})
    assert status == 400 and "colour" in body["error"]["message"]
    status, body = await gateway.admin("GET", "/admin/accounts/does-not-exist")
    assert status == 404


async def test_topup_is_idempotent_on_order_id(gateway: Gateway) -> None:
    account, _ = await gateway.account(topup=None)
    path = f"/admin/accounts/{account}/topups"
    status, first = await gateway.admin("POST", path, {"amount": "10.00", "order_id": "p_1"})
    assert status == 201 and first["amount"] == "10.00" and first["balance_after"] == "10.00"
    status, replay = await gateway.admin("POST", path, {"amount": "10.00", "order_id": "p_1"})
    assert status == 200 and replay == first
    status, conflict = await gateway.admin("POST", path, {"amount": "11.00", "order_id": "p_1"})
    assert status == 409 and conflict["error"]["code"] == "conflict"
    assert (await gateway.wallet(account))["balance"] == "10.00"


async def test_fifty_concurrent_replays_credit_once(gateway: Gateway) -> None:
    account, _ = await gateway.account(topup=None)
    path = f"/admin/accounts/{account}/topups"
    results = await asyncio.gather(
        *(
            gateway.admin("POST", path, {"amount": "2.50", "order_id": "stripe_evt_42"})
            for _ in range(50)
        )
    )
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * 49 + [201]
    assert len({b["id"] for _, b in results}) == 1
    assert (await gateway.wallet(account))["balance"] == "2.50"


@pytest.mark.parametrize(
    "amount",
    [
        None,
        10,
        1.5,
        "abc",
        "-5.00",
        "0",
        "0.00",
        "1e3",
        "0.0000000001",
        "",
        True,
        "99999999999999999999",
    ],
)
async def test_bad_amounts_are_400(gateway: Gateway, amount: object) -> None:
    account, _ = await gateway.account(topup=None)
    status, body = await gateway.admin(
        "POST", f"/admin/accounts/{account}/topups", {"amount": amount, "order_id": "o"}
    )
    if amount == 10:  # a JSON integer is an exact amount too
        assert status == 201
        return
    assert status == 400, body
    assert body["error"]["param"] == "amount"
    assert (await gateway.wallet(account))["balance"] == "0.00"


async def test_refund_only_unspent_cash(gateway: Gateway) -> None:
    account, _ = await gateway.account(topup="10.00")
    path = f"/admin/accounts/{account}/refunds"
    status, body = await gateway.admin("POST", path, {"amount": "10.01", "order_id": "r1"})
    assert status == 400 and "exceeds the unspent cash" in body["error"]["message"]
    status, body = await gateway.admin("POST", path, {"amount": "4.00", "order_id": "r1"})
    assert status == 201 and body["type"] == "refund" and body["balance_after"] == "6.00"
    status, again = await gateway.admin("POST", path, {"amount": "4.00", "order_id": "r1"})
    assert status == 200 and again == body
    wallet = await gateway.wallet(account)
    assert wallet == {
        "balance": "6.00",
        "cash": "6.00",
        "credits": "0.00",
        "free_quota": "0.00",
        "held": "0.00",
        "month_spend": "0.00",
        "credit_grants": [],
        "free_quota_by_category": {"ai": "0.00", "cloud": "0.00"},
    }


async def test_transactions_json_and_csv(gateway: Gateway) -> None:
    account, _ = await gateway.account(topup="1.00")
    await gateway.admin(
        "POST", f"/admin/accounts/{account}/topups", {"amount": "0.0000042", "order_id": "small"}
    )
    status, body = await gateway.admin("GET", f"/admin/accounts/{account}/transactions")
    assert status == 200
    assert [(t["type"], t["amount"]) for t in body["data"]] == [
        ("topup", "0.0000042"),
        ("topup", "1.00"),
    ]
    async with gateway.http.get(
        f"{gateway.url}/admin/accounts/{account}/transactions",
        params={"format": "csv"},
        headers=gateway.admin_headers,
    ) as r:
        assert r.status == 200 and r.content_type == "text/csv"
        rows = list(csv.DictReader(io.StringIO(await r.text())))
    assert [row["amount"] for row in rows] == ["0.0000042", "1.00"]
    assert rows[0]["balance_after"] == "1.0000042"


async def test_key_limits_are_validated(gateway: Gateway) -> None:
    account, _ = await gateway.account(topup=None)
    status, body = await gateway.admin("POST", f"/admin/accounts/{account}/keys", {"rpm": -1})
    assert status == 400 and body["error"]["param"] == "rpm"
    status, body = await gateway.admin("POST", "/admin/accounts/nope/keys", {})
    assert status == 404


async def test_transactions_filter_by_type_and_time_and_page_by_cursor(gateway: Gateway) -> None:
    account, _ = await gateway.account(topup="10.00")
    path = f"/admin/accounts/{account}"
    for n, (kind, amount) in enumerate([("refunds", "1.00"), ("credits", "2.00"),
                                        ("topups", "3.00"), ("credits", "4.00")]):
        status, body = await gateway.admin("POST", f"{path}/{kind}",
                                           {"amount": amount, "order_id": f"m{n}"})  # fmt: skip
        assert status == 201, body
    status, page = await gateway.admin("GET", f"{path}/transactions?type=credit")
    assert [t["amount"] for t in page["data"]] == ["4.00", "2.00"] and page["next"] is None
    seen, before = [], ""
    while True:
        status, page = await gateway.admin(
            "GET", f"{path}/transactions?limit=2&type=topup,refund&before={before}")
        assert status == 200, page
        seen += [t["order_id"] for t in page["data"]]
        if page["next"] is None:
            break
        before = page["next"]
    assert seen == ["m2", "m0", f"seed-{account}"]
    status, page = await gateway.admin("GET", f"{path}/transactions?from=2099-01-01")
    assert page["data"] == []
    status, page = await gateway.admin("GET", f"{path}/transactions?to=2000-01-01T00:00:00Z")
    assert page["data"] == []
    status, page = await gateway.admin("GET", f"{path}/transactions?from=2000-01-01")
    assert len(page["data"]) == 5
    status, page = await gateway.admin("GET", f"{path}/transactions?before=0000-0000")
    assert (status, page["data"], page["next"]) == (200, [], None)  # found by schemathesis
    for bad in ("type=charge", "from=yesterday", "before=x", "to=2027-01-01T00:00:00"):
        status, body = await gateway.admin("GET", f"{path}/transactions?{bad}")
        assert status == 400, (bad, body)
