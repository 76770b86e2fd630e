"""Key roles (issue 19, docs/guards.md "Roles"): a viewer calls no model and reads its wallet and
usage; a member calls models; an owner also manages its own account, and nothing of another's,
through /v1/account. Keys made before roles are members."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai
import pytest
import requests
import schemathesis

from gateway.billing.accounts import hash_key
from gateway.store.keys import api_key_by_hash
from tests.integration.conftest import Gateway, GatewayFactory
from tests.integration.test_openapi import document, fuzz, strategies
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.redis_cluster_too

CHAT = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]}
MODEL_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses",
               "/v1/messages", "/v1/images/generations", "/v1/audio/transcriptions")  # fmt: skip


async def call(
    gw: Gateway, key: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with gw.http.request(method, gw.url + path, json=body,
                               headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        return r.status, await r.json()


async def new_key(gw: Gateway, account: str, **fields: Any) -> dict[str, Any]:
    status, key = await gw.admin("POST", f"/admin/accounts/{account}/keys", fields)
    assert status == 201, key
    return key  # type: ignore[no-any-return]


def refused(answer: tuple[int, Any], code: str = "role_not_allowed") -> bool:
    status, body = answer
    return status == 403 and body["error"]["code"] == code


async def test_a_viewer_reads_its_wallet_and_usage_and_calls_no_model(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, member = await gateway.account(topup="1.00")
    viewer = (await new_key(gateway, account, role="viewer", name="dashboards"))["key"]
    async with gateway.http.post(gateway.url + "/v1/chat/completions", json=CHAT,
                                 headers={"Authorization": f"Bearer {member}"}) as r:  # fmt: skip
        assert r.status == 200, await r.text()
        request_id = r.headers["X-Request-Id"]
    forwarded = len(upstream.requests)
    client = gateway.openai(viewer)
    with pytest.raises(openai.PermissionDeniedError) as info:
        await client.chat.completions.create(model="gpt-flat", messages=CHAT["messages"])
    assert info.value.code == "role_not_allowed" and "'viewer'" in info.value.message
    assert info.value.type == "invalid_request_error"
    with pytest.raises(openai.PermissionDeniedError) as info:
        await client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert info.value.code == "role_not_allowed"
    with pytest.raises(openai.PermissionDeniedError) as info:
        await client.responses.create(model="gpt-4o-mini", input="hi")
    assert info.value.code == "role_not_allowed"
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        await gateway.anthropic(viewer).messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert "role_not_allowed" in str(caught.value.body)
    for path in MODEL_PATHS:  # refused before the body is read: even an empty one
        assert refused(await call(gateway, viewer, "POST", path, {})), path
    assert len(upstream.requests) == forwarded  # nothing forwarded
    wallet = await gateway.wallet(account)
    assert wallet["held"] == "0.00" and wallet["balance"] == "0.998", wallet  # nothing held

    status, mine = await call(gateway, viewer, "GET", "/v1/wallet")
    assert status == 200 and mine["balance"] == "0.998", mine
    status, record = await call(gateway, viewer, "GET", f"/v1/requests/{request_id}")
    assert status == 200 and record["cost"] == "0.002", record
    assert (await call(gateway, viewer, "GET", "/v1/models"))[0] == 200
    assert (await call(gateway, viewer, "GET", "/v1/wallet/receipts"))[0] == 200
    assert refused(await call(gateway, viewer, "POST", "/v1/wallet/redeem", {"code": "X"}))
    for method, path in (("GET", "/v1/account"), ("PATCH", "/v1/account"),
                         ("GET", "/v1/account/keys"), ("POST", "/v1/account/keys")):
        assert refused(await call(gateway, viewer, method, path, {})), path


async def test_a_viewer_is_refused_before_its_body_is_read(
    make_gateway: GatewayFactory, upstream: FakeUpstream
) -> None:
    small = await make_gateway(max_body_bytes=1000)
    account, member = await small.account(topup="1.00")
    viewer = (await new_key(small, account, role="viewer"))["key"]
    big = {**CHAT, "padding": "x" * 5000}
    assert (await call(small, member, "POST", "/v1/chat/completions", big))[0] == 413
    assert refused(await call(small, viewer, "POST", "/v1/chat/completions", big))
    async with small.http.get(small.url + "/metrics") as r:
        assert 'tollgate_rejections_total{reason="role_not_allowed"} 1.0' in await r.text()


async def test_a_member_calls_models_and_may_not_manage_the_account(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, member = await gateway.account(topup="1.00")
    assert (await call(gateway, member, "POST", "/v1/chat/completions", CHAT))[0] == 200
    assert (await call(gateway, member, "GET", "/v1/wallet"))[0] == 200
    for method, path in (("GET", "/v1/account"), ("PATCH", "/v1/account"),
                         ("GET", "/v1/account/keys"), ("POST", "/v1/account/keys"),
                         ("PATCH", "/v1/account/keys/key_0"),
                         ("DELETE", "/v1/account/keys/key_0")):  # fmt: skip
        answer = await call(gateway, member, method, path, {"monthly_limit": "1.00"})
        assert refused(answer), (path, answer)
    _status, body = await gateway.admin("GET", f"/admin/accounts/{account}")
    assert body["monthly_limit"] != "1.00"


async def test_a_key_made_before_roles_is_a_member(
    gateway: Gateway, upstream: FakeUpstream, redis: Any
) -> None:
    account, key = await gateway.account(topup="1.00")
    stored = api_key_by_hash(hash_key(key))
    await redis.hdel(stored, "role", "allowed_ips", "monthly_spend_limit")  # as issue 18 wrote it
    assert set(await redis.hkeys(stored)) == {"id", "account", "project", "name", "rpm", "tpm",
                                              "created_at"}  # fmt: skip
    _status, keys = await gateway.admin("GET", f"/admin/accounts/{account}/keys")
    assert [(k["role"], k["allowed_ips"], k["monthly_spend_limit"]) for k in keys["data"]] == [
        ("member", [], None)]
    assert (await call(gateway, key, "POST", "/v1/chat/completions", CHAT))[0] == 200
    assert refused(await call(gateway, key, "GET", "/v1/account"))


async def test_the_owner_manages_its_accounts_guards_and_billing_details(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, _ = await gateway.account(topup="1.00")
    owner = (await new_key(gateway, account, role="owner"))["key"]
    status, mine = await call(gateway, owner, "GET", "/v1/account")
    _, theirs = await gateway.admin("GET", f"/admin/accounts/{account}")
    assert status == 200 and mine == theirs, (mine, theirs)  # what the operator sees
    status, changed = await call(gateway, owner, "PATCH", "/v1/account", {
        "alert_thresholds": ["0.50", "0.90"], "monthly_limit": "0.004", "limit_action": "pause",
        "auto_topup": {"threshold": "0.20", "amount": "10.00"},
        "billing": {"name": "Acme Ltd", "tax_id": "GB123"}})  # fmt: skip
    assert status == 200, changed
    assert (changed["alert_thresholds"], changed["monthly_limit"], changed["billing"]["name"]) == (
        ["0.90", "0.50"], "0.004", "Acme Ltd")
    _, theirs = await gateway.admin("GET", f"/admin/accounts/{account}")
    assert theirs == changed
    for _ in range(2):  # the new limit is the one admission reads
        assert (await call(gateway, owner, "POST", "/v1/chat/completions", CHAT))[0] == 200
    assert refused(await call(gateway, owner, "POST", "/v1/chat/completions", CHAT),
                   "monthly_limit_reached")  # fmt: skip
    for name, value in (("plan", "pro"), ("status", "active"), ("hold_policy", "postpaid"),
                        ("rpm", 5), ("tpm", 5), ("name", "x"), ("credits_per_usd", 100)):
        status, err = await call(gateway, owner, "PATCH", "/v1/account",
                                 {"monthly_limit": "9.00", name: value})  # fmt: skip
        assert refused((status, err)) and err["error"]["param"] == name, (name, err)
    status, err = await call(gateway, owner, "PATCH", "/v1/account", {"colour": "red"})
    assert status == 400 and err["error"]["param"] == "colour", err
    status, err = await call(gateway, owner, "PATCH", "/v1/account", {"monthly_limit": "-1"})
    assert status == 400 and err["error"]["param"] == "monthly_limit", err
    _, theirs = await gateway.admin("GET", f"/admin/accounts/{account}")
    assert theirs == changed  # nothing refused changed anything
    for method, path in (("POST", f"/admin/accounts/{account}/topups"),
                         ("POST", f"/admin/accounts/{account}/credits"),
                         ("PATCH", f"/admin/accounts/{account}")):  # the operator's, not its
        status, _ = await call(gateway, owner, method, path, {"amount": "5.00", "order_id": "o"})
        assert status == 401, path


async def test_the_owner_manages_its_own_keys_and_no_one_elses(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, member = await gateway.account(topup="1.00")
    other_account, other_key = await gateway.account(topup="1.00")
    owner = (await new_key(gateway, account, role="owner", name="boss"))["key"]
    theirs = (await new_key(gateway, other_account, name="theirs"))["id"]

    status, made = await call(gateway, owner, "POST", "/v1/account/keys", {
        "name": "ci", "project": "web", "role": "viewer", "allowed_ips": ["10.0.0.0/8"],
        "monthly_spend_limit": "5.00", "rpm": 10})  # fmt: skip
    assert status == 201 and made["key"].startswith("tg-"), made
    assert (made["account"], made["project"], made["role"], made["allowed_ips"],
            made["monthly_spend_limit"], made["rpm"]) == (
        account, "web", "viewer", ["10.0.0.0/8"], "5.00", 10)  # fmt: skip
    status, listed = await call(gateway, owner, "GET", "/v1/account/keys")
    assert status == 200 and sorted(k["name"] for k in listed["data"]) == ["boss", "ci", "ci"]
    assert all("key" not in k for k in listed["data"])

    status, patched = await call(gateway, owner, "PATCH", f"/v1/account/keys/{made['id']}",
                                 {"role": "member", "allowed_ips": None, "rpm": None,
                                  "monthly_spend_limit": None})  # fmt: skip
    assert status == 200, patched
    assert (patched["role"], patched["allowed_ips"], patched["rpm"],
            patched["monthly_spend_limit"], patched["project"]) == (
        "member", [], None, None, "web")  # fmt: skip
    assert (await call(gateway, made["key"], "POST", "/v1/chat/completions", CHAT))[0] == 200
    status, err = await call(gateway, owner, "PATCH", f"/v1/account/keys/{made['id']}",
                             {"project": "other"})  # fmt: skip
    assert status == 400 and err["error"]["param"] == "project", err

    for method in ("PATCH", "DELETE"):  # another account's key: as if there were none
        status, err = await call(gateway, owner, method, f"/v1/account/keys/{theirs}",
                                 {"role": "viewer"})  # fmt: skip
        assert status == 404 and err["error"]["code"] == "not_found", err
    status, others = await gateway.admin("GET", f"/admin/accounts/{other_account}/keys")
    assert {k["role"] for k in others["data"]} == {"member"} and len(others["data"]) == 2
    assert (await call(gateway, other_key, "GET", "/v1/wallet"))[0] == 200

    status, gone = await call(gateway, owner, "DELETE", f"/v1/account/keys/{made['id']}")
    assert (status, gone) == (200, {"id": made["id"], "deleted": True})
    status, err = await call(gateway, made["key"], "GET", "/v1/wallet")
    assert status == 401, err  # revoked at once
    status, _ = await call(gateway, owner, "DELETE", f"/v1/account/keys/{made['id']}")
    assert status == 404
    # The owner demotes a member to viewer: its model calls stop at once.
    _, listed = await call(gateway, owner, "GET", "/v1/account/keys")
    member_id = next(k["id"] for k in listed["data"] if k["name"] == "ci")
    status, _ = await call(gateway, owner, "PATCH", f"/v1/account/keys/{member_id}",
                           {"role": "viewer"})  # fmt: skip
    assert status == 200
    assert refused(await call(gateway, member, "POST", "/v1/chat/completions", CHAT))


async def test_a_suspended_accounts_owner_reads_and_changes_nothing(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, _ = await gateway.account(topup="1.00")
    owner = (await new_key(gateway, account, role="owner"))["key"]
    status, _ = await gateway.admin("PATCH", f"/admin/accounts/{account}", {"status": "suspended"})
    assert status == 200
    assert (await call(gateway, owner, "GET", "/v1/account"))[0] == 200
    assert (await call(gateway, owner, "GET", "/v1/account/keys"))[0] == 200
    for method, path in (("PATCH", "/v1/account"), ("POST", "/v1/account/keys")):
        assert refused(await call(gateway, owner, method, path, {}), "account_suspended"), path


async def test_the_admin_changes_a_keys_settings(gateway: Gateway, upstream: FakeUpstream) -> None:
    account, key = await gateway.account(topup="1.00")
    _, keys = await gateway.admin("GET", f"/admin/accounts/{account}/keys")
    key_id = keys["data"][0]["id"]
    status, changed = await gateway.admin("PATCH", f"/admin/keys/{key_id}", {
        "name": "renamed", "role": "owner", "models": ["gpt-*"], "tpm": 1000,
        "allowed_ips": ["127.0.0.1", "::1"], "monthly_spend_limit": "0.50",
        "expires_at": "2099-01-01T00:00:00Z"})  # fmt: skip
    assert status == 200, changed
    assert {k: changed[k] for k in ("name", "role", "models", "tpm", "allowed_ips",
                                    "monthly_spend_limit", "expires_at")} == {
        "name": "renamed", "role": "owner", "models": ["gpt-*"], "tpm": 1000,
        "allowed_ips": ["127.0.0.1/32", "::1/128"], "monthly_spend_limit": "0.50",
        "expires_at": "2099-01-01T00:00:00Z"}  # fmt: skip
    assert (await call(gateway, key, "GET", "/v1/account"))[0] == 200  # an owner now, at once
    for bad in ({"role": "admin"}, {"role": None}, {"allowed_ips": ["10.0.0.1/8"]},
                {"allowed_ips": "10.0.0.0/8"}, {"monthly_spend_limit": 5},
                {"monthly_spend_limit": "0"}, {"monthly_spend_limit": "-1.00"},
                {"project": "x"}, {"secret": "x"}, {"name": None}):
        status, err = await gateway.admin("PATCH", f"/admin/keys/{key_id}", bad)
        assert status == 400 and err["error"]["param"] == next(iter(bad)), (bad, err)
    status, err = await gateway.admin("PATCH", "/admin/keys/key_nope", {"role": "viewer"})
    assert status == 404, err
    status, err = await gateway.admin("POST", f"/admin/accounts/{account}/keys",
                                      {"allowed_ip": ["10.0.0.0/8"]})  # a typo: refused
    assert status == 400 and err["error"]["param"] == "allowed_ip", err


async def test_the_owners_routes_keep_to_the_document_as_an_owner_calls_them(
    gateway: Gateway,
) -> None:
    """test_openapi fuzzes /v1/account as a member (all 403); here as the owner."""
    account, _ = await gateway.account(topup="1.00")
    owner = (await new_key(gateway, account, role="owner"))["key"]
    spare = [(await new_key(gateway, account, name="spare"))["id"] for _ in range(2)]
    schema = schemathesis.openapi.from_dict(await document(gateway), config=schemathesis.Config())

    def run() -> dict[str, str]:
        failures: dict[str, str] = {}
        with requests.Session() as session:
            for result in schema.get_all_operations():
                operation = result.ok()
                if not operation.path.startswith("/v1/account"):
                    continue
                try:
                    fuzz(operation, strategies(operation, {"key_id": spare}),
                         base_url=gateway.url, headers={"Authorization": f"Bearer {owner}"},
                         session=session)  # fmt: skip
                except (Exception, BaseExceptionGroup) as exc:
                    failures[operation.label] = str(exc)
        return failures

    failures = await asyncio.to_thread(run)
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
