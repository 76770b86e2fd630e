"""RPM and TPM limits per key and per account, shared by every gateway process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import openai
import pytest

from gateway.store.keys import AccountKeys
from tests.integration.conftest import Gateway, remote
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import GatewayProcess

pytestmark = pytest.mark.redis_cluster_too

Spawn = Callable[..., Awaitable[GatewayProcess]]


async def chat(gw: Gateway, key: str, **extra: Any) -> tuple[int, dict[str, Any], Any]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **extra}
    async with gw.http.post(gw.url + "/v1/chat/completions", json=body,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        return r.status, await r.json(), r.headers


async def test_key_rpm_limit_429_with_headers(gateway: Gateway, upstream: FakeUpstream) -> None:
    _, key = await gateway.account(rpm=3)
    remaining = []
    for _ in range(3):
        status, _, headers = await chat(gateway, key)
        assert status == 200
        assert headers["x-ratelimit-limit-requests"] == "3"
        remaining.append(int(headers["x-ratelimit-remaining-requests"]))
        assert headers["x-ratelimit-reset-requests"].endswith("s")
    assert remaining == [2, 1, 0]
    status, body, headers = await chat(gateway, key)
    assert status == 429
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert "key RPM limit of 3 requests per minute" in body["error"]["message"]
    assert 1 <= int(headers["Retry-After"]) <= 20
    assert len(upstream.requests) == 3


async def test_sdk_sees_rate_limit_error(gateway: Gateway) -> None:
    _, key = await gateway.account(rpm=1)
    client = gateway.openai(key)
    await client.chat.completions.create(model="gpt-4o-mini",
                                         messages=[{"role": "user", "content": "x"}])  # fmt: skip
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.code == "rate_limit_exceeded"


async def test_account_rpm_applies_across_its_keys(gateway: Gateway) -> None:
    account, key1 = await gateway.account()
    status, _ = await gateway.admin("PATCH", f"/admin/accounts/{account}", {"rpm": 2})
    assert status == 200
    status, key2 = await gateway.admin("POST", f"/admin/accounts/{account}/keys", {"name": "k2"})
    assert status == 201
    assert (await chat(gateway, key1))[0] == 200
    assert (await chat(gateway, key2["key"]))[0] == 200
    status, body, _ = await chat(gateway, key1)
    assert status == 429 and "account RPM limit of 2" in body["error"]["message"]


async def test_tpm_counts_the_estimate_then_corrects_to_actual(
    gateway: Gateway, redis: Any, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account(tpm=1000)
    # A hold for max_tokens=900 (plus the prompt) fits once; the answer is short, so the
    # bucket gets back the difference and a second request fits too.
    status, _, headers = await chat(gateway, key, max_tokens=900)
    assert status == 200
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    assert int(headers["x-ratelimit-remaining-tokens"]) < 100
    status, _, _ = await chat(gateway, key, max_tokens=900)
    assert status == 200
    await gateway.wallet(account)  # a wallet read waits for this process's settles
    _, keys = await gateway.admin("GET", f"/admin/accounts/{account}/keys")
    bucket = AccountKeys(account).bucket("key:" + keys["data"][0]["id"], "tpm")
    assert float(await redis.hget(bucket, "level")) > 900  # two short answers, corrected back


async def test_request_larger_than_tpm_can_never_fit(gateway: Gateway) -> None:
    _, key = await gateway.account(tpm=100)
    status, body, headers = await chat(gateway, key, max_tokens=500)
    assert status == 429
    assert "more than the key TPM limit of 100 tokens per minute" in body["error"]["message"]
    assert headers["Retry-After"] == "60"


async def test_rpm_holds_across_two_processes(spawn: Spawn, upstream: FakeUpstream) -> None:
    a, b = await spawn(), await spawn()
    async with aiohttp.ClientSession() as http:
        gws = [remote(a, http), remote(b, http)]
        _, key = await gws[0].account(rpm=10)
        results = await asyncio.gather(*(chat(gws[i % 2], key) for i in range(40)))
    ok = sum(1 for s, _, _ in results if s == 200)
    assert 10 <= ok <= 11  # refill during the burst may add one
    assert {s for s, _, _ in results} == {200, 429}


async def test_tpm_holds_across_two_processes(
    spawn: Spawn, redis: Any, upstream: FakeUpstream
) -> None:
    a, b = await spawn(), await spawn()
    async with aiohttp.ClientSession() as http:
        gws = [remote(a, http), remote(b, http)]
        _, key = await gws[0].account(tpm=600)
        results = await asyncio.gather(*(chat(gws[i % 2], key, max_tokens=40) for i in range(30)))
    ok = [r for r in results if r[0] == 200]
    assert ok and len(ok) < 30
    used = sum(body["usage"]["total_tokens"] for _, body, _ in ok)
    largest = max(body["usage"]["total_tokens"] for _, body, _ in ok)
    # Admission counts the (larger) estimate, so actual use stays under the limit plus one.
    assert used <= 600 + largest
