"""Model aliases (gateway config) and per-key model allow-lists (set on the key)."""

from __future__ import annotations

import io
import wave
from typing import Any

import anthropic
import openai
import pytest

from pricing import parse_usd
from tests.integration.conftest import Gateway, GatewayFactory
from tests.support.fake_upstream import FakeUpstream

ALIASES = {"fast": "gpt-4o-mini", "smart": "claude-sonnet-4-6", "ears": "whisper-1"}


@pytest.fixture
async def aliased(make_gateway: GatewayFactory) -> Gateway:
    return await make_gateway(aliases=ALIASES)


async def test_an_alias_is_billed_routed_and_forwarded_as_its_model(
    aliased: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await aliased.account()
    upstream.usage_override = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    raw = await aliased.openai(key).chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-model"] == "gpt-4o-mini"
    assert upstream.requests[-1]["model"] == "gpt-4o-mini"
    # gpt-4o-mini prices: 100 x 0.15 + 10 x 0.60 per 1M = 21 / 1M USD = 0.000021 USD
    assert raw.headers["x-usage-cost"] == "0.000021"
    record = await aliased.record(key, raw.headers["x-request-id"])
    assert record["model"] == "gpt-4o-mini"
    wallet = await aliased.wallet(account)
    assert parse_usd(wallet["balance"]) == parse_usd("10.00") - 21_000


async def test_aliases_work_on_messages_and_on_forms(
    aliased: Gateway, upstream: FakeUpstream
) -> None:
    _, key = await aliased.account()
    raw = await aliased.anthropic(key).messages.with_raw_response.create(
        model="smart", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-model"] == "claude-sonnet-4-6"
    assert upstream.requests[-1]["model"] == "claude-sonnet-4-6"

    audio = io.BytesIO()
    with wave.open(audio, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(16000))
    raw_t = await aliased.openai(key).audio.transcriptions.with_raw_response.create(
        model="ears", file=("a.wav", audio.getvalue(), "audio/wav"), language="en"
    )
    assert raw_t.headers["x-model"] == "whisper-1"
    assert upstream.requests[-1]["model"] == "whisper-1"
    assert upstream.requests[-1]["language"] == "en"
    # Only the model field changed: the upload reached the upstream intact.
    assert audio.getvalue() in upstream.bodies[-1]


async def test_a_model_outside_the_allow_list_is_403_and_nothing_is_held(
    aliased: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await aliased.account(models=["gpt-4o-mini", "text-embedding-*"])
    client = aliased.openai(key)
    with pytest.raises(openai.PermissionDeniedError) as info:
        await client.chat.completions.create(
            model="gpt-flat", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.code == "model_not_allowed"
    assert "gpt-flat" in info.value.message
    with pytest.raises(anthropic.PermissionDeniedError):
        await aliased.anthropic(key).messages.create(
            model="smart", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert upstream.requests == []
    wallet = await aliased.wallet(account)
    assert wallet["balance"] == "10.00" and wallet["held"] == "0.00"

    # Allowed: by name, by glob, and through an alias of an allowed model.
    await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    await client.embeddings.create(model="text-embedding-3-small", input="hi")
    await client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
    assert len(upstream.requests) == 3


async def test_an_empty_allow_list_allows_nothing(gateway: Gateway) -> None:
    _, key = await gateway.account(models=[])
    with pytest.raises(openai.PermissionDeniedError):
        await gateway.openai(key).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )


async def test_the_key_shows_its_allow_list(gateway: Gateway) -> None:
    account, _ = await gateway.account(models=["gpt-*"])
    status, keys = await gateway.admin("GET", f"/admin/accounts/{account}/keys")
    assert status == 200 and keys["data"][0]["models"] == ["gpt-*"]
    account2, _ = await gateway.account()
    _, keys = await gateway.admin("GET", f"/admin/accounts/{account2}/keys")
    assert keys["data"][0]["models"] is None


@pytest.mark.parametrize("models", ["gpt-*", [""], [1], [" gpt"], {"a": 1}, [None], True])
async def test_a_bad_allow_list_is_400(gateway: Gateway, models: Any) -> None:
    status, account = await gateway.admin("POST", "/admin/accounts", {"name": "a"})
    assert status == 201
    status, body = await gateway.admin(
        "POST", f"/admin/accounts/{account['id']}/keys", {"models": models}
    )
    assert status == 400
    assert body["error"]["param"] == "models"
