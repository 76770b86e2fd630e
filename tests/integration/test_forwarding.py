"""What reaches a provider: an allow-list of request headers, and only model names that are
names (a control character is refused before anything is held or forwarded)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.redis_cluster_too

CHAT = {"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


async def test_only_allowed_request_headers_reach_the_provider(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _, key = await gateway.account(topup="1.00")
    sent = {
        "Authorization": f"Bearer {key}",
        "OpenAI-Organization": "org-customer", "OpenAI-Project": "proj-customer",
        "X-Forwarded-For": "10.1.2.3", "User-Agent": "customer-agent/1.0",
        "Cookie": "session=customer", "X-Stainless-Lang": "python",
        "OpenAI-Beta": "assistants=v2", "Idempotency-Key": "idem-1",
        "anthropic-beta": "prompt-caching-2024-07-31",
    }  # fmt: skip
    async with gateway.http.post(gateway.url + "/v1/chat/completions", json=CHAT,
                                 headers=sent) as r:  # fmt: skip
        assert r.status == 200, await r.text()
    got = {k.lower(): v for k, v in upstream.headers[-1].items()}
    assert got["authorization"] == "Bearer sk-upstream-secret"  # the operator's key only
    assert got["openai-beta"] == "assistants=v2" and got["idempotency-key"] == "idem-1"
    assert got["anthropic-beta"] == "prompt-caching-2024-07-31"
    for name in ("openai-organization", "openai-project", "x-forwarded-for", "cookie",
                 "x-stainless-lang"):  # fmt: skip
        assert name not in got, (name, got)
    assert "customer" not in got.get("user-agent", ""), got


@pytest.mark.parametrize("model", ["gpt-4o-mini\r\nX-Injected: 1", "gpt-4o-mini\x00",
                                   "gpt-\x85mini", "gpt-4o-mini\n", "g" * 300])  # fmt: skip
async def test_a_model_name_with_control_characters_is_refused_before_anything_is_held(
    gateway: Gateway, upstream: FakeUpstream, redis: Any, model: str
) -> None:
    account, key = await gateway.account(topup="1.00")
    async with gateway.http.post(gateway.url + "/v1/chat/completions",
                                 json={**CHAT, "model": model},
                                 headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        body = await r.json()
        assert r.status == 400, body
    assert body["error"]["code"] == "invalid_request" and body["error"]["param"] == "model"
    assert upstream.requests == []
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "1.00" and wallet["held"] == "0.00"
