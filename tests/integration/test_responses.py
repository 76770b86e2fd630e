"""OpenAI's Responses API through the gateway, driven by the official openai SDK."""

from __future__ import annotations

import openai
import orjson
import pytest

from pricing import parse_usd
from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream

# gpt-4o-mini in the test price table, nanodollars per 1M tokens:
# input 0.15, output 0.60, cache_read 0.075.
IN, OUT, CACHED = 150_000_000, 600_000_000, 75_000_000

USAGE = {
    "input_tokens": 2000,
    "input_tokens_details": {"cached_tokens": 1536},
    "output_tokens": 500,
    "output_tokens_details": {"reasoning_tokens": 320},
    "total_tokens": 2500,
}
# input_tokens includes the 1536 cached ones; output includes the 320 reasoning ones:
# (2000 - 1536) * 0.15 + 1536 * 0.075 + 500 * 0.60 per 1M tokens
# = (69.6 + 115.2 + 300) / 1M USD = 484.8 / 1M = 0.0004848 USD
COST = "0.0004848"


def cost_of(input_tokens: int, cached: int, output: int) -> int:
    scaled = (input_tokens - cached) * IN + cached * CACHED + output * OUT
    return -(-scaled // 1_000_000)


async def test_plain_response_bills_cached_and_reasoning_tokens(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account()
    upstream.usage_override = USAGE
    raw = await gateway.openai(key).responses.with_raw_response.create(
        model="gpt-4o-mini", input="Tell me about toll roads", instructions="Be brief."
    )
    response = raw.parse()
    assert response.output_text.startswith("This is gpt-4o-mini")
    assert response.status == "completed"
    assert raw.headers["x-usage-cost"] == COST
    assert parse_usd(COST) == cost_of(2000, 1536, 500)
    assert raw.headers["x-total-tokens"] == "2500"
    wallet = await gateway.wallet(account)
    assert parse_usd(wallet["balance"]) == parse_usd("10.00") - parse_usd(COST)
    record = await gateway.record(key, raw.headers["x-request-id"])
    assert record["usage"] == {
        "input_tokens": 464,
        "output_tokens": 500,
        "cache_read_tokens": 1536,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "reasoning_tokens": 320,
        "total_tokens": 2500,
        "images": 0,
        "audio_ms": 0,
    }
    assert record["usage_source"] == "upstream" and record["endpoint"] == "/responses"


async def test_streamed_response_is_billed_from_response_completed(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account()
    upstream.usage_override = USAGE
    stream = await gateway.openai(key).responses.create(
        model="gpt-4o-mini",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "stream it"}]}],
        stream=True,
    )
    events = [e async for e in stream]
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.startswith("This is gpt-4o-mini")
    usage = events[-1].response.usage  # type: ignore[union-attr]
    assert usage is not None and usage.input_tokens == 2000
    wallet = await gateway.wallet(account)
    assert parse_usd("10.00") - parse_usd(wallet["balance"]) == parse_usd(COST)
    assert wallet["held"] == "0.00"


async def test_stream_cost_comment_sits_right_before_response_completed(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account()
    upstream.usage_override = USAGE
    async with gateway.http.post(
        gateway.url + "/v1/responses",
        json={"model": "gpt-4o-mini", "input": "count the bytes", "stream": True},
        headers={"Authorization": f"Bearer {key}"},
    ) as r:
        assert r.status == 200 and r.headers["X-Model"] == "gpt-4o-mini"
        body = await r.read()
    blocks = body.split(b"\n\n")
    assert blocks[-1] == b""
    assert blocks[-2].startswith(b"event: response.completed\ndata: ")
    assert blocks[-3] == b": x-usage-cost " + COST.encode()
    assert [b.split(b"\n")[0] for b in blocks[:2]] == [
        b"event: response.created",
        b"event: response.in_progress",
    ]
    assert all(b.startswith(b"event: response.") for b in blocks[:-3])
    wallet = await gateway.wallet(account)
    assert parse_usd("10.00") - parse_usd(wallet["balance"]) == parse_usd(COST)


async def test_incomplete_response_is_the_end_of_the_stream_too(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account()
    async with gateway.http.post(
        gateway.url + "/v1/responses",
        json={
            "model": "gpt-4o-mini",
            "input": "a long answer please",
            "stream": True,
            "max_output_tokens": 3,
        },
        headers={"Authorization": f"Bearer {key}"},
    ) as r:
        body = await r.read()
    blocks = body.split(b"\n\n")
    assert blocks[-2].startswith(b"event: response.incomplete\n")
    assert blocks[-3].startswith(b": x-usage-cost ")
    final = orjson.loads(blocks[-2].split(b"data: ", 1)[1])
    usage = final["response"]["usage"]
    assert usage["output_tokens"] <= 3
    charged = parse_usd(blocks[-3].split(b" ")[-1].decode())
    assert charged == cost_of(usage["input_tokens"], 0, usage["output_tokens"])
    wallet = await gateway.wallet(account)
    assert parse_usd("10.00") - parse_usd(wallet["balance"]) == charged


async def test_mock_provider_speaks_responses(gateway: Gateway) -> None:
    account, key = await gateway.account()
    client = gateway.openai(key)
    response = await client.responses.create(model="mock-gpt", input="hi")
    assert response.usage is not None and response.output_text
    first = cost_of(response.usage.input_tokens, 0, response.usage.output_tokens)
    stream = await client.responses.create(model="mock-gpt", input="hi", stream=True)
    events = [e async for e in stream]
    last = events[-1]
    assert last.type == "response.completed" and last.response.usage is not None
    second = cost_of(last.response.usage.input_tokens, 0, last.response.usage.output_tokens)
    wallet = await gateway.wallet(account)
    assert parse_usd("10.00") - parse_usd(wallet["balance"]) == first + second


async def test_background_responses_are_refused(gateway: Gateway, upstream: FakeUpstream) -> None:
    _, key = await gateway.account()
    with pytest.raises(openai.BadRequestError) as info:
        await gateway.openai(key).responses.create(
            model="gpt-4o-mini", input="later", background=True
        )
    assert info.value.param == "background"
    assert upstream.requests == []


async def test_max_output_tokens_bounds_the_hold(gateway: Gateway, upstream: FakeUpstream) -> None:
    _, key = await gateway.account(topup="0.0001")
    client = gateway.openai(key)
    # 1000 output tokens (the model's ceiling) at 0.60 per 1M: up to 0.0006 USD, too much.
    with pytest.raises(openai.PermissionDeniedError):
        await client.responses.create(model="gpt-4o-mini", input="hi")
    # Asking for at most 50 bounds the hold at 0.00003 USD plus the prompt: admitted.
    response = await client.responses.create(model="gpt-4o-mini", input="hi", max_output_tokens=50)
    assert response.status == "completed"
    assert len(upstream.requests) == 1


# -- legacy completions ------------------------------------------------------------------------


async def test_completions_plain_and_streamed(gateway: Gateway, upstream: FakeUpstream) -> None:
    account, key = await gateway.account()
    client = gateway.openai(key)
    upstream.usage_override = {
        "prompt_tokens": 40,
        "completion_tokens": 12,
        "total_tokens": 52,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    raw = await client.completions.with_raw_response.create(
        model="gpt-4o-mini", prompt="Say this is a test", max_tokens=20
    )
    completion = raw.parse()
    assert completion.choices[0].text.startswith("This is gpt-4o-mini")
    # 40 * 0.15 + 12 * 0.60 per 1M tokens = (6 + 7.2) / 1M USD = 0.0000132 USD
    assert raw.headers["x-usage-cost"] == "0.0000132"

    upstream.usage_override = None
    stream = await client.completions.create(
        model="gpt-4o-mini",
        prompt="Say this is a streamed test",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text.startswith("This is gpt-4o-mini")
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    wallet = await gateway.wallet(account)
    spent = parse_usd("10.00") - parse_usd(wallet["balance"])
    assert spent == 13_200 + cost_of(usage.prompt_tokens, 0, usage.completion_tokens)


async def test_completions_stream_without_usage_is_still_billed(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account()
    stream = await gateway.openai(key).completions.create(
        model="gpt-4o-mini", prompt="no usage chunk for me", stream=True
    )
    chunks = [c async for c in stream]
    assert all(c.usage is None for c in chunks)  # the forced usage chunk was taken out
    assert upstream.requests[-1]["stream_options"] == {"include_usage": True}
    wallet = await gateway.wallet(account)
    assert parse_usd(wallet["balance"]) < parse_usd("10.00")
