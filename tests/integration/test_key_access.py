"""Where a key may be used from (``allowed_ips``, IPv4 and IPv6, the client found through
``trusted_proxies``), and what it may spend a month (``monthly_spend_limit``), through HTTP."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import openai
import pytest

from tests.integration.conftest import Gateway, GatewayFactory
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.redis_cluster_too

CHAT = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]}  # 0.002 each
# The tests' client is loopback: as a trusted proxy its X-Forwarded-For names the client.
LOOPBACK = (ip_network("127.0.0.0/8"), ip_network("::1/128"))


async def call(
    gw: Gateway, key: str, method: str, path: str, body: Any = None, via: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    if via is not None:
        headers["X-Forwarded-For"] = via
    async with gw.http.request(method, gw.url + path, json=body, headers=headers) as r:
        return r.status, await r.json()


async def new_key(gw: Gateway, account: str, **fields: Any) -> dict[str, Any]:
    status, key = await gw.admin("POST", f"/admin/accounts/{account}/keys", fields)
    assert status == 201, key
    return key  # type: ignore[no-any-return]


def code(answer: tuple[int, Any]) -> str | None:
    status, body = answer
    return body["error"]["code"] if status >= 400 else None


async def test_a_key_works_only_from_its_networks_ipv4_and_ipv6(
    make_gateway: GatewayFactory, upstream: FakeUpstream
) -> None:
    gw = await make_gateway(trusted_proxies=LOOPBACK)
    account, member = await gw.account(topup="1.00")
    v4 = (await new_key(gw, account, allowed_ips=["203.0.113.0/24", "198.51.100.7"]))["key"]
    v6 = (await new_key(gw, account, role="owner", allowed_ips=["2001:db8::/32"]))["key"]
    async with gw.http.post(gw.url + "/v1/chat/completions", json=CHAT,
                            headers={"Authorization": f"Bearer {member}"}) as r:  # fmt: skip
        request_id = r.headers["X-Request-Id"]
    routes = [("POST", "/v1/chat/completions", CHAT), ("GET", "/v1/wallet", None),
              ("GET", f"/v1/requests/{request_id}", None), ("GET", "/v1/models", None),
              ("GET", "/v1/wallet/receipts", None)]  # fmt: skip
    for key, inside, outside in (
        (v4, ["203.0.113.9", "198.51.100.7", "::ffff:203.0.113.9"],
         ["203.0.114.1", "198.51.100.8", "2001:db8::7"]),
        (v6, ["2001:db8::7", "[2001:db8:ffff::1]:443"], ["2001:db9::1", "203.0.113.9"]),
    ):  # fmt: skip
        for via in inside:
            for method, path, body in routes:
                assert code(await call(gw, key, method, path, body, via)) is None, (via, path)
        for via in [*outside, None]:  # None: the loopback peer itself
            for method, path, body in routes:
                answer = await call(gw, key, method, path, body, via)
                assert code(answer) == "ip_not_allowed", (via, path, answer)
    # The owner's API too: the owner key may manage the account from its network only.
    assert code(await call(gw, v6, "GET", "/v1/account", via="2001:db8::1")) is None
    assert code(await call(gw, v6, "GET", "/v1/account", via="203.0.113.9")) == "ip_not_allowed"
    assert code(await call(gw, v6, "PATCH", "/v1/account", {"monthly_limit": "1.00"},
                           via="198.51.100.7")) == "ip_not_allowed"  # fmt: skip
    _, account_now = await gw.admin("GET", f"/admin/accounts/{account}")
    assert account_now["monthly_limit"] != "1.00"
    # A client that writes its own X-Forwarded-For is not believed: the proxy's hop counts.
    answer = await call(gw, v4, "GET", "/v1/wallet", via="203.0.113.9, 192.0.2.1")
    assert code(answer) == "ip_not_allowed" and "192.0.2.1" in answer[1]["error"]["message"]
    assert code(await call(gw, v4, "GET", "/v1/wallet", via="192.0.2.1, 203.0.113.9")) is None
    # What was refused was neither forwarded nor held: the member's call and 5 from inside.
    assert len(upstream.requests) == 1 + 5
    wallet = await gw.wallet(account)
    assert wallet["held"] == "0.00" and wallet["balance"] == "0.988", wallet


async def test_an_untrusted_peers_forwarded_for_is_ignored(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, _ = await gateway.account(topup="1.00")
    elsewhere = (await new_key(gateway, account, allowed_ips=["203.0.113.0/24"]))["key"]
    here = (await new_key(gateway, account, allowed_ips=["127.0.0.1"]))["key"]
    assert code(await call(gateway, elsewhere, "POST", "/v1/chat/completions", CHAT,
                           via="203.0.113.9")) == "ip_not_allowed"  # fmt: skip
    assert code(await call(gateway, here, "POST", "/v1/chat/completions", CHAT,
                           via="198.51.100.1")) is None  # fmt: skip
    _status, keys = await gateway.admin("GET", f"/admin/accounts/{account}/keys")
    assert sorted(tuple(k["allowed_ips"]) for k in keys["data"]) == [
        (), ("127.0.0.1/32",), ("203.0.113.0/24",)]


async def test_allowed_ips_change_at_once(gateway: Gateway, upstream: FakeUpstream) -> None:
    account, key = await gateway.account(topup="1.00")
    _, keys = await gateway.admin("GET", f"/admin/accounts/{account}/keys")
    key_id = keys["data"][0]["id"]
    assert code(await call(gateway, key, "GET", "/v1/wallet")) is None  # cached from here on
    status, _ = await gateway.admin("PATCH", f"/admin/keys/{key_id}",
                                    {"allowed_ips": ["10.0.0.0/8"]})  # fmt: skip
    assert status == 200
    assert code(await call(gateway, key, "GET", "/v1/wallet")) == "ip_not_allowed"
    status, _ = await gateway.admin("PATCH", f"/admin/keys/{key_id}", {"allowed_ips": []})
    assert code(await call(gateway, key, "GET", "/v1/wallet")) is None


async def test_a_keys_monthly_spend_limit_through_http(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, other = await gateway.account(topup="1.00")
    capped = await new_key(gateway, account, monthly_spend_limit="0.005")
    assert capped["monthly_spend_limit"] == "0.005"
    key = capped["key"]
    for _ in range(2):
        assert code(await call(gateway, key, "POST", "/v1/chat/completions", CHAT)) is None
    status, body = await call(gateway, key, "POST", "/v1/chat/completions", CHAT)
    assert status == 403 and body["error"]["code"] == "monthly_limit_reached", body
    assert "API key's monthly spend limit of 0.005 USD" in body["error"]["message"], body
    assert "0.004 USD spent" in body["error"]["message"], body
    with pytest.raises(openai.PermissionDeniedError) as info:  # the SDK sees the same
        await gateway.openai(key).chat.completions.create(model="gpt-flat",
                                                          messages=CHAT["messages"])  # fmt: skip
    assert info.value.code == "monthly_limit_reached"
    assert code(await call(gateway, other, "POST", "/v1/chat/completions", CHAT)) is None
    status, _ = await gateway.admin("PATCH", f"/admin/keys/{capped['id']}",
                                    {"monthly_spend_limit": "0.006"})  # fmt: skip
    assert status == 200
    assert code(await call(gateway, key, "POST", "/v1/chat/completions", CHAT)) is None
    assert code(await call(gateway, key, "POST", "/v1/chat/completions", CHAT)) == (
        "monthly_limit_reached")
    status, _ = await gateway.admin("PATCH", f"/admin/keys/{capped['id']}",
                                    {"monthly_spend_limit": None})  # fmt: skip
    assert code(await call(gateway, key, "POST", "/v1/chat/completions", CHAT)) is None
    wallet = await gateway.wallet(account)
    assert wallet["month_spend"] == "0.01" and wallet["held"] == "0.00", wallet
