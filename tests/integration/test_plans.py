"""Plans (issue 18): the free plan grants $1 of AI free quota and cannot top up until it is
upgraded; paid plans top up within their bounds; the config merges over the built-in plans."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.billing.plans import BUILT_IN, PlanError, parse_plans
from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.redis_cluster_too


async def make(gw: Gateway, plan: str) -> tuple[str, str]:
    status, acct = await gw.admin("POST", "/admin/accounts", {"name": "acme", "plan": plan})
    assert status == 201, acct
    status, key = await gw.admin("POST", f"/admin/accounts/{acct['id']}/keys", {"name": "k"})
    assert status == 201, key
    return acct["id"], key["key"]


async def topup(gw: Gateway, account: str, amount: str, order: str) -> tuple[int, Any]:
    return await gw.admin("POST", f"/admin/accounts/{account}/topups",
                          {"amount": amount, "order_id": order})  # fmt: skip


async def test_a_free_account_spends_its_quota_and_must_upgrade_to_top_up(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await make(gateway, "free")
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "1.00" and wallet["free_quota"] == "1.00", wallet
    assert wallet["free_quota_by_category"] == {"ai": "1.00", "cloud": "0.00"}
    async with gateway.http.post(gateway.url + "/v1/chat/completions", json={
            "model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        assert r.status == 200
        rid = r.headers["X-Request-Id"]
    rec = await gateway.record(key, rid)
    assert rec["cost_by_source"] == {"free_quota": "0.002", "credits": "0.00", "cash": "0.00"}
    status, body = await topup(gateway, account, "10.00", "t1")
    assert status == 403 and body["error"]["code"] == "plan_cannot_top_up", body
    assert "upgrade" in body["error"]["message"]
    status, _ = await gateway.admin("PATCH", f"/admin/accounts/{account}", {"plan": "pro"})
    assert status == 200
    status, body = await topup(gateway, account, "10.00", "t1")
    assert status == 201, body
    assert (await gateway.wallet(account))["balance"] == "10.998"


async def test_a_paid_plan_tops_up_within_its_bounds(gateway: Gateway) -> None:
    account, _ = await make(gateway, "pro")
    for amount in ("9.99", "1000.01"):
        status, body = await topup(gateway, account, amount, f"o-{amount}")
        assert status == 400 and body["error"]["param"] == "amount", body
        assert "from 10.00 to 1000.00 USD" in body["error"]["message"], body
    assert (await topup(gateway, account, "1000.00", "ok"))[0] == 201
    status, body = await gateway.admin("POST", "/admin/accounts", {"name": "x", "plan": "gold"})
    assert status == 400 and body["error"]["param"] == "plan" and "free" in body["error"]["message"]


async def test_the_config_merges_plans_over_the_built_in_ones(make_gateway: Any) -> None:
    plans = parse_plans({"pro": {"topup_min": "5.00"},
                         "team": {"free_quota": {"ai": "2.50", "cloud": "0.50"}}})  # fmt: skip
    assert plans["pro"].topup_min == 5 * 10**9 and plans["pro"].topup_max == 1000 * 10**9
    assert plans["free"] == BUILT_IN["free"]
    gw = await make_gateway(plans=plans)
    account, _ = await make(gw, "team")
    wallet = await gw.wallet(account)
    assert wallet["free_quota_by_category"] == {"ai": "2.50", "cloud": "0.50"}
    assert wallet["balance"] == "2.50"  # the Cloud quota pays Cloud usage only
    for bad, field in (({"pro": {"topup_min": 10}}, "plans.pro.topup_min"),
                       ({"pro": {"color": "red"}}, "plans.pro.color"),
                       ({"free": {"free_quota_renews": "weekly"}}, "plans.free.free_quota_renews"),
                       ({"x": {"topup_min": "9.00", "topup_max": "1.00"}}, "plans.x.topup_min")):
        with pytest.raises(PlanError) as caught:
            parse_plans(bad)
        assert caught.value.field == field
