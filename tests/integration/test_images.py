"""Image generation, billed per image by size and quality, with the official openai SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from pricing import parse_usd
from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream

# dall-e-3 in the test price table: 1024x1024 0.04, 1024x1024/hd 0.08, 1792x1024/hd 0.12 USD.


async def test_hd_image_costs_the_hd_price(gateway: Gateway, upstream: FakeUpstream) -> None:
    account, key = await gateway.account()
    raw = await gateway.openai(key).images.with_raw_response.generate(
        model="dall-e-3", prompt="a toll booth at dawn", size="1024x1024", quality="hd"
    )
    images = raw.parse()
    assert images.data is not None and len(images.data) == 1
    assert images.data[0].url is not None and images.data[0].url.startswith("https://")
    # 1 image x 0.08 USD
    assert raw.headers["x-usage-cost"] == "0.08"
    assert raw.headers["x-model"] == "dall-e-3"
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "9.92" and wallet["held"] == "0.00"
    assert upstream.requests[-1]["quality"] == "hd"
    record = await gateway.record(key, raw.headers["x-request-id"])
    assert record["usage"]["images"] == 1
    assert record["usage"]["image_variant"] == "1024x1024/hd"
    assert record["usage"]["total_tokens"] == 0 and record["held"] == "0.08"


async def test_n_images_standard_quality_is_the_bare_size(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account()
    raw = await gateway.openai(key).images.with_raw_response.generate(
        model="dall-e-3", prompt="three bridges", n=3, quality="standard"
    )
    assert len(raw.parse().data or []) == 3
    # 3 images x 0.04 USD ("standard" is the bare size; size defaults to 1024x1024)
    assert raw.headers["x-usage-cost"] == "0.12"
    # The default size was written into the request, so the upstream makes what is billed.
    assert upstream.requests[-1]["size"] == "1024x1024"
    assert (await gateway.wallet(account))["balance"] == "9.88"


async def test_fewer_images_returned_are_what_is_billed(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    # The hold is exactly 3 x 0.04 = 0.12, which is all the wallet has.
    account, key = await gateway.account(topup="0.12")
    upstream.images_returned = 2
    raw = await gateway.openai(key).images.with_raw_response.generate(
        model="dall-e-3", prompt="pick two", n=3, size="1024x1024"
    )
    assert len(raw.parse().data or []) == 2
    # 2 images x 0.04 USD
    assert raw.headers["x-usage-cost"] == "0.08"
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "0.04" and wallet["held"] == "0.00"
    record = await gateway.record(key, raw.headers["x-request-id"])
    assert record["usage"]["images"] == 2 and record["held"] == "0.12"


async def test_the_hold_is_the_exact_cost(gateway: Gateway, upstream: FakeUpstream) -> None:
    _, key = await gateway.account(topup="0.11")
    with pytest.raises(openai.PermissionDeniedError) as info:
        await gateway.openai(key).images.generate(
            model="dall-e-3", prompt="too many", n=3, size="1024x1024"
        )
    assert "0.12" in info.value.message
    assert upstream.requests == []


async def test_a_size_with_no_price_is_refused_before_forwarding(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account()
    with pytest.raises(openai.BadRequestError) as info:
        await gateway.openai(key).images.generate(model="dall-e-3", prompt="small", size="512x512")
    assert info.value.code == "model_not_priced"
    assert "512x512" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        await gateway.openai(key).images.generate(model="dall-e-3", prompt="wide", size="1792x1024")
    assert "1792x1024" in info.value.message  # only the hd variant of that size has a price
    assert upstream.requests == []
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "10.00" and wallet["held"] == "0.00"


async def test_mock_provider_draws_b64_images(gateway: Gateway) -> None:
    _, key = await gateway.account()
    raw = await gateway.openai(key).images.with_raw_response.generate(
        model="mock-image", prompt="a pixel", n=2, response_format="b64_json"
    )
    data = raw.parse().data or []
    assert len(data) == 2 and all(d.b64_json for d in data)
    assert raw.headers["x-usage-cost"] == "0.08"  # 2 x 0.04 USD


@pytest.mark.parametrize(
    "body",
    [
        {"model": "dall-e-3", "prompt": "x", "n": 0},
        {"model": "dall-e-3", "prompt": "x", "n": 11},
        {"model": "dall-e-3", "prompt": "x", "n": "2"},
        {"model": "dall-e-3", "prompt": "x", "n": 1.5},
        {"model": "dall-e-3", "prompt": "x", "size": 1024},
        {"model": "dall-e-3", "prompt": "x", "quality": ["hd"]},
        {"model": "dall-e-3", "prompt": "x", "stream": True},
        {"model": 3, "prompt": "x"},
    ],
)
async def test_bad_image_requests_are_400(
    gateway: Gateway, upstream: FakeUpstream, body: dict[str, Any]
) -> None:
    account, key = await gateway.account()
    async with gateway.http.post(
        gateway.url + "/v1/images/generations",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
    ) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "invalid_request"
    assert upstream.requests == []
    assert (await gateway.wallet(account))["balance"] == "10.00"


async def test_upstream_failure_costs_nothing(gateway: Gateway, upstream: FakeUpstream) -> None:
    account, key = await gateway.account()
    upstream.status = 400
    with pytest.raises(openai.BadRequestError):
        await gateway.openai(key).images.generate(model="dall-e-3", prompt="refused")
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "10.00" and wallet["held"] == "0.00"
    assert parse_usd(wallet["balance"]) == parse_usd("10.00")
