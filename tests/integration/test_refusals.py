"""Bad input and empty wallets: a clear OpenAI-shaped error, nothing forwarded, nothing charged."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from gateway.provider_settings import ProviderConfig
from pricing import parse_usd
from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream
from tests.support.redis_server import free_port


async def post(
    gateway: Gateway,
    key: str,
    body: bytes | None = None,
    *,
    json: Any = None,
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    async with gateway.http.post(
        gateway.url + path,
        data=body,
        json=json,
        headers={"Authorization": f"Bearer {key}", **(headers or {})},
    ) as r:
        return r.status, await r.json()


async def test_empty_wallet_is_403_before_anything_is_sent(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account(topup=None)
    with pytest.raises(openai.PermissionDeniedError) as info:
        await gateway.openai(key).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.code == "insufficient_balance"
    assert "balance is 0.00 USD" in info.value.message and "Top up" in info.value.message
    assert upstream.requests == []
    assert (await gateway.wallet(account))["balance"] == "0.00"


async def test_wallet_runs_dry_then_refuses(gateway: Gateway, upstream: FakeUpstream) -> None:
    # gpt-flat costs 0.002 per request: 0.005 pays for exactly two.
    account, key = await gateway.account(topup="0.005")
    client = gateway.openai(key)
    for _ in range(2):
        await client.chat.completions.create(
            model="gpt-flat", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.PermissionDeniedError):
        await client.chat.completions.create(
            model="gpt-flat", messages=[{"role": "user", "content": "hi"}]
        )
    assert len(upstream.requests) == 2
    assert (await gateway.wallet(account))["balance"] == "0.001"


async def test_unpriced_model_is_400_model_not_priced(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _, key = await gateway.account()
    status, body = await post(
        gateway,
        key,
        json={"model": "gpt-5-unpriced", "messages": [{"role": "user", "content": "x"}]},
    )
    assert status == 400 and body["error"]["code"] == "model_not_priced"
    assert body["error"]["param"] == "model"
    # A model priced only per image cannot be billed on the chat route either.
    status, body = await post(gateway, key, json={"model": "dall-e-3", "messages": []})
    assert status == 400 and body["error"]["code"] == "model_not_priced"
    assert upstream.requests == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"model": "gpt-4o-mini", "messages": [',
        b"[1, 2]",
        b"null",
        b"\xff\xfe",
        b'{"messages": []}',
        b'{"model": 42}',
        b'{"model": ""}',
        b'{"model": null}',
        b'{"model": "gpt-4o-mini", "stream": "yes"}',
    ],
)
async def test_malformed_bodies_are_400_and_change_nothing(
    gateway: Gateway, upstream: FakeUpstream, body: bytes
) -> None:
    account, key = await gateway.account()
    status, answer = await post(gateway, key, body, headers={"Content-Type": "application/json"})
    assert status == 400, answer
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["code"] == "invalid_request"
    assert upstream.requests == []
    assert (await gateway.wallet(account))["balance"] == "10.00"


async def test_huge_body_is_413(make_gateway: Any, upstream: FakeUpstream) -> None:
    gateway = await make_gateway(max_body_bytes=1024)
    _account, key = await gateway.account()
    status, answer = await post(
        gateway, key, b'{"model": "gpt-4o-mini", "x": "' + b"a" * 5000 + b'"}'
    )
    assert status == 413 and answer["error"]["code"] == "request_too_large"
    assert upstream.requests == []


async def test_missing_and_wrong_keys_are_401(gateway: Gateway) -> None:
    async with gateway.http.post(gateway.url + "/v1/chat/completions", json={}) as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "invalid_api_key"
    status, body = await post(gateway, "tg-wrong", json={"model": "gpt-4o-mini"})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


async def test_x_api_key_header_authenticates(gateway: Gateway) -> None:
    _, key = await gateway.account()
    async with gateway.http.get(gateway.url + "/v1/wallet", headers={"x-api-key": key}) as r:
        assert r.status == 200
        assert (await r.json())["balance"] == "10.00"


async def test_revoked_key_stops_working(gateway: Gateway) -> None:
    account, key = await gateway.account()
    status, keys = await gateway.admin("GET", f"/admin/accounts/{account}/keys")
    assert status == 200 and len(keys["data"]) == 1 and "key" not in keys["data"][0]
    status, _ = await gateway.admin("DELETE", f"/admin/keys/{keys['data'][0]['id']}")
    assert status == 200
    async with gateway.http.get(
        gateway.url + "/v1/wallet", headers={"Authorization": f"Bearer {key}"}
    ) as r:
        assert r.status == 401


async def test_upstream_error_is_passed_through_and_not_charged(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account()
    upstream.status = 500
    async with gateway.http.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": []},
        headers={"Authorization": f"Bearer {key}"},
    ) as r:
        assert r.status == 500
        rid = r.headers["X-Request-Id"]
        assert (await r.json())["error"]["message"] == f"forced failure Request id: {rid}"
        assert r.headers["X-Usage-Cost"] == "0.00"
        assert r.headers["X-Upstream-Request-Id"] == "up-123"
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "10.00" and wallet["held"] == "0.00"
    async with gateway.http.get(
        f"{gateway.url}/v1/requests/{rid}", headers={"Authorization": f"Bearer {key}"}
    ) as r:
        record = await r.json()
    assert record["status"] == "failed" and record["cost"] == "0.00"


async def test_unreachable_upstream_is_502_and_not_charged(make_gateway: Any) -> None:
    dead = ProviderConfig(
        name="dead",
        kind="openai",
        models=("gpt-*",),
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        api_key="sk-upstream-secret",
    )
    gw2 = await make_gateway(providers=(dead,))
    account, key = await gw2.account()
    status, body = await post(gw2, key, json={"model": "gpt-4o-mini", "messages": []})
    assert status == 502 and body["error"]["code"] == "upstream_error"
    assert (await gw2.wallet(account))["held"] == "0.00"
    assert (await gw2.wallet(account))["balance"] == "10.00"


async def test_requests_of_other_accounts_are_not_visible(gateway: Gateway) -> None:
    _, key_a = await gateway.account()
    _, key_b = await gateway.account()
    raw = await gateway.openai(key_a).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "mine"}]
    )
    rid = raw.headers["x-request-id"]
    async with gateway.http.get(
        f"{gateway.url}/v1/requests/{rid}", headers={"Authorization": f"Bearer {key_b}"}
    ) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "not_found"


async def test_unknown_route_is_openai_shaped_404(gateway: Gateway) -> None:
    async with gateway.http.get(gateway.url + "/v1/nothing-here") as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "not_found"


async def test_concurrent_requests_never_take_more_than_the_wallet(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account(topup="0.01")  # exactly five flat requests
    client = gateway.openai(key)

    async def one() -> bool:
        try:
            await client.chat.completions.create(
                model="gpt-flat", messages=[{"role": "user", "content": "x"}]
            )
            return True
        except openai.PermissionDeniedError:
            return False

    results = await asyncio.gather(*(one() for _ in range(40)))
    assert sum(results) == 5
    wallet = await gateway.wallet(account)
    assert parse_usd(wallet["balance"]) == 0
