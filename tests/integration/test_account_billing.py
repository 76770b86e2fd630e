"""An account's billing details and display unit (issue 18): set on create, changed or cleared
one by one with PATCH, shown on the account; an account counting in credits sees its wallet in
credits too (admin and client), exactly."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Gateway

pytestmark = pytest.mark.redis_cluster_too

UNSET = {"name": None, "address": None, "tax_id": None, "email": None}


async def my_wallet(gw: Gateway, key: str) -> dict[str, Any]:
    async with gw.http.get(gw.url + "/v1/wallet", headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status == 200, await r.text()
        return await r.json()  # type: ignore[no-any-return]


async def test_billing_details_are_set_changed_and_cleared_one_by_one(gateway: Gateway) -> None:
    status, made = await gateway.admin("POST", "/admin/accounts", {
        "name": "acme", "billing": {"name": "Acme Ltd", "address": "1 Main St\r\nSpringfield",
                                    "email": "ap@acme.example"}})  # fmt: skip
    assert status == 201, made
    assert made["billing"] == {"name": "Acme Ltd", "address": "1 Main St\nSpringfield",
                               "tax_id": None, "email": "ap@acme.example"}  # fmt: skip
    assert made["credits_per_usd"] is None
    path = f"/admin/accounts/{made['id']}"
    status, changed = await gateway.admin("PATCH", path, {"billing": {"tax_id": "GB123",
                                                                      "email": None}})
    assert status == 200 and changed["billing"] == {**made["billing"], "tax_id": "GB123",
                                                    "email": None}  # fmt: skip
    status, shown = await gateway.admin("GET", path)
    assert shown["billing"] == changed["billing"]
    status, page = await gateway.admin("GET", "/admin/accounts?search=acme")
    assert page["data"][0]["billing"] == changed["billing"]
    status, cleared = await gateway.admin("PATCH", path, {"billing": None})
    assert status == 200 and cleared["billing"] == UNSET
    status, plain = await gateway.admin("POST", "/admin/accounts", {"name": "plain"})
    assert plain["billing"] == UNSET


async def test_bad_details_are_refused_and_nothing_changes(gateway: Gateway) -> None:
    account, _ = await gateway.account(topup=None, billing={"name": "Acme"})
    path = f"/admin/accounts/{account}"
    for body, param in (({"billing": {"name": "a\nb"}}, "billing.name"),
                        ({"billing": {"email": "nope"}}, "billing.email"),
                        ({"billing": {"vat": "1"}}, "billing.vat"),
                        ({"billing": ["Acme"]}, "billing"),
                        ({"credits_per_usd": 0}, "credits_per_usd"),
                        ({"credits_per_usd": "100"}, "credits_per_usd")):  # fmt: skip
        status, answer = await gateway.admin("PATCH", path, body)
        assert status == 400 and answer["error"]["param"] == param, (body, answer)
    status, shown = await gateway.admin("GET", path)
    assert shown["billing"] == {**UNSET, "name": "Acme"} and shown["credits_per_usd"] is None


async def test_a_wallet_in_credits_shows_them_beside_the_dollars(gateway: Gateway) -> None:
    account, key = await gateway.account(topup="10.0123", credits_per_usd=100)
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "10.0123" and wallet["cash"] == "10.0123"  # USD as before
    assert wallet["display"] == {"unit": "credits", "per_usd": 100, "balance": "1001.23",
                                 "cash": "1001.23", "credits": "0.00", "free_quota": "0.00",
                                 "held": "0.00", "month_spend": "0.00"}  # fmt: skip
    assert (await my_wallet(gateway, key))["display"] == wallet["display"]
    path = f"/admin/accounts/{account}"
    status, changed = await gateway.admin("PATCH", path, {"credits_per_usd": 3})
    assert status == 200 and changed["credits_per_usd"] == 3
    assert (await my_wallet(gateway, key))["display"]["balance"] == "30.0369"
    status, changed = await gateway.admin("PATCH", path, {"credits_per_usd": None})
    assert status == 200 and changed["credits_per_usd"] is None
    assert "display" not in await gateway.wallet(account)  # USD only: the wallet as it was
    assert "display" not in await my_wallet(gateway, key)
