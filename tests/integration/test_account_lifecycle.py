"""An account's life: suspended (keys refused, nothing forwarded) and resumed; closed for good
(the ledger kept); keys that expire; accounts listed in pages and found by search."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.redis_cluster_too

CHAT = {"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


async def chat(gw: Gateway, key: str) -> tuple[int, dict[str, Any]]:
    async with gw.http.post(gw.url + "/v1/chat/completions", json=CHAT,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        return r.status, await r.json()


async def test_a_suspended_account_is_refused_until_resumed(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account(topup="1.00")
    status, body = await gateway.admin("PATCH", f"/admin/accounts/{account}",
                                       {"status": "suspended"})  # fmt: skip
    assert status == 200 and body["status"] == "suspended", body
    status, body = await chat(gateway, key)
    assert status == 403 and body["error"]["code"] == "account_suspended", body
    assert upstream.requests == []
    assert (await gateway.wallet(account)) == {**(await gateway.wallet(account)),
                                               "balance": "1.00", "held": "0.00"}  # fmt: skip
    status, body = await gateway.admin("PATCH", f"/admin/accounts/{account}",
                                       {"status": "active"})  # fmt: skip
    assert status == 200
    status, body = await chat(gateway, key)
    assert status == 200, body


async def test_a_closed_account_takes_no_traffic_keeps_its_ledger_and_stays_closed(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account(topup="1.00")
    assert (await chat(gateway, key))[0] == 200
    status, _ = await gateway.admin("PATCH", f"/admin/accounts/{account}", {"status": "closed"})
    assert status == 200
    status, body = await chat(gateway, key)
    assert status == 403 and body["error"]["code"] == "account_closed", body
    status, body = await gateway.admin("PATCH", f"/admin/accounts/{account}",
                                       {"status": "active"})  # fmt: skip
    assert status == 409, body
    status, txns = await gateway.admin("GET", f"/admin/accounts/{account}/transactions")
    assert status == 200 and [t["type"] for t in txns["data"]] == ["topup"]
    assert (await gateway.wallet(account))["balance"] != "1.00"  # the charge is still there
    status, body = await gateway.admin("PATCH", f"/admin/accounts/{account}", {"status": "gone"})
    assert status == 400 and body["error"]["param"] == "status"


async def test_a_key_stops_working_when_it_expires(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, _ = await gateway.account(topup="1.00")
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    status, key = await gateway.admin("POST", f"/admin/accounts/{account}/keys",
                                      {"name": "short", "expires_at": soon})  # fmt: skip
    assert status == 201 and key["expires_at"] == soon, key
    assert (await chat(gateway, key["key"]))[0] == 200
    await asyncio.sleep(max(0.0, time.mktime(time.strptime(soon, "%Y-%m-%dT%H:%M:%SZ"))
                            - time.mktime(time.gmtime()) + 0.2))  # fmt: skip
    status, body = await chat(gateway, key["key"])
    assert status == 401 and "expired" in body["error"]["message"], body
    for bad in ("2001-01-01T00:00:00Z", "tomorrow", "2030-01-01T00:00:00", 5):
        status, body = await gateway.admin("POST", f"/admin/accounts/{account}/keys",
                                           {"expires_at": bad})  # fmt: skip
        assert status == 400 and body["error"]["param"] == "expires_at", (bad, body)


async def test_accounts_are_listed_in_pages_and_found_by_search(gateway: Gateway) -> None:
    made = set()
    for name in ("alpha", "beta", "gamma", "delta", "Zeta Corp"):
        status, acct = await gateway.admin("POST", "/admin/accounts", {"name": name})
        assert status == 201
        made.add(acct["id"])
    seen, after, pages = [], "", 0
    while True:
        status, page = await gateway.admin("GET", f"/admin/accounts?limit=2&after={after}")
        assert status == 200 and len(page["data"]) <= 2, page
        seen += [a["id"] for a in page["data"]]
        pages += 1
        if page["next"] is None:
            break
        after = page["next"]
    assert seen == sorted(made) and pages == 3
    status, found = await gateway.admin("GET", "/admin/accounts?search=zeta")
    assert [a["name"] for a in found["data"]] == ["Zeta Corp"] and found["next"] is None
    status, body = await gateway.admin("GET", "/admin/accounts?limit=0")
    assert status == 400 and body["error"]["param"] == "limit"
