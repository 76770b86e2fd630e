"""GET /v1/models: the priced, routed models a key may use, in OpenAI's list format."""

from __future__ import annotations

import openai
import pytest

from tests.integration.conftest import Gateway

ROUTED_AND_PRICED = {
    "claude-sonnet-4-6": "anthropic",
    "dall-e-3": "openai",
    "gpt-4o-mini": "openai",
    "gpt-flat": "openai",
    "mock-claude": "mock",
    "mock-gpt": "mock",
    "mock-image": "mock",
    "mock-whisper": "mock",
    "text-embedding-3-small": "openai",
    "whisper-1": "openai",
}


async def test_lists_priced_models_that_a_provider_serves(gateway: Gateway) -> None:
    _, key = await gateway.account()
    page = await gateway.openai(key).models.list()
    models = {m.id: m for m in page.data}
    # Not listed: the glob "gpt-legacy-*" (a pattern, not a model) and "unrouted-model".
    assert set(models) == set(ROUTED_AND_PRICED)
    assert {name: m.owned_by for name, m in models.items()} == ROUTED_AND_PRICED
    assert all(m.object == "model" and isinstance(m.created, int) for m in models.values())


async def test_the_raw_shape_is_openais(gateway: Gateway) -> None:
    _, key = await gateway.account()
    async with gateway.http.get(gateway.url + "/v1/models", headers={"x-api-key": key}) as r:
        assert r.status == 200
        body = await r.json()
    assert body["object"] == "list"
    assert body["data"][0].keys() == {"id", "object", "created", "owned_by"}


async def test_an_allow_list_narrows_the_list(gateway: Gateway) -> None:
    _, key = await gateway.account(models=["gpt-4o-mini", "claude-*", "no-such-model"])
    page = await gateway.openai(key).models.list()
    assert sorted(m.id for m in page.data) == ["claude-sonnet-4-6", "gpt-4o-mini"]


async def test_models_needs_a_key(gateway: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        await gateway.openai("tg-wrong").models.list()
