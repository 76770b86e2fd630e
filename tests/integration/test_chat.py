"""The core slice with the official openai SDK: chat (plain and streaming) and embeddings."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from pricing import parse_usd
from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream

# gpt-4o-mini in the test price table: input 0.15, output 0.60, cache_read 0.075 per 1M tokens.
IN, OUT, CACHED = 150_000_000, 600_000_000, 75_000_000


def expected_cost(prompt: int, completion: int, cached: int = 0) -> int:
    scaled = (prompt - cached) * IN + cached * CACHED + completion * OUT
    return -(-scaled // 1_000_000)


async def test_chat_plain_is_charged_exactly_what_the_headers_say(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account(topup="10.00")
    client = gateway.openai(key)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there, gateway"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content.startswith("This is gpt-4o-mini")
    usage = completion.usage
    assert usage is not None
    cost = parse_usd(raw.headers["x-usage-cost"])
    assert cost == expected_cost(usage.prompt_tokens, usage.completion_tokens)
    assert raw.headers["x-total-tokens"] == str(usage.total_tokens)
    assert raw.headers["x-model"] == "gpt-4o-mini"
    assert raw.headers["x-request-id"].startswith("req_")
    wallet = await gateway.wallet(account)
    assert parse_usd(wallet["balance"]) == parse_usd("10.00") - cost
    assert raw.headers["x-balance-remaining"] == wallet["balance"]
    assert wallet["held"] == "0.00"
    # The provider got our provider key, never the client's.
    assert upstream.headers[-1]["Authorization"] == "Bearer sk-upstream-secret"


async def test_cached_tokens_are_billed_at_cache_read(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _account, key = await gateway.account()
    upstream.usage_override = {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920},
        "completion_tokens_details": {"reasoning_tokens": 192},
    }
    raw = await gateway.openai(key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    # 86 * 0.15 + 1920 * 0.075 + 300 * 0.60 per 1M = 0.0000129 + 0.000144 + 0.00018
    assert raw.headers["x-usage-cost"] == "0.0003369"
    assert parse_usd(raw.headers["x-usage-cost"]) == expected_cost(2006, 300, cached=1920)
    record = await gateway.http.get(
        f"{gateway.url}/v1/requests/{raw.headers['x-request-id']}",
        headers={"Authorization": f"Bearer {key}"},
    )
    body = await record.json()
    assert body["usage"] == {
        "input_tokens": 86,
        "output_tokens": 300,
        "cache_read_tokens": 1920,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "reasoning_tokens": 192,
        "total_tokens": 2306,
        "images": 0,
        "audio_ms": 0,
    }
    assert body["cost"] == "0.0003369" and body["status"] == "settled"
    assert body["usage_source"] == "upstream"


@pytest.mark.parametrize("include_usage", [False, True])
async def test_streaming_chat_charges_and_keeps_the_stream_shape(
    gateway: Gateway, upstream: FakeUpstream, include_usage: bool
) -> None:
    account, key = await gateway.account()
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = await gateway.openai(key).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream me a reply"}],
        stream=True,
        **kwargs,
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("This is gpt-4o-mini")
    usage_chunks = [c for c in chunks if c.usage is not None]
    # The gateway always asked the upstream for usage...
    assert upstream.requests[-1]["stream_options"] == {"include_usage": True}
    # ...but the client sees the usage chunk only if it asked for it.
    assert len(usage_chunks) == (1 if include_usage else 0)
    assert all(c.choices for c in chunks) != include_usage
    wallet = await gateway.wallet(account)
    spent = parse_usd("10.00") - parse_usd(wallet["balance"])
    assert spent > 0
    if include_usage:
        u = usage_chunks[0].usage
        assert u is not None
        assert spent == expected_cost(u.prompt_tokens, u.completion_tokens)


async def test_stream_bytes_are_the_upstreams_plus_one_cost_comment_before_done(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account()
    async with gateway.http.post(
        gateway.url + "/v1/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "count the bytes"}],
        },
        headers={"Authorization": f"Bearer {key}"},
    ) as r:
        assert r.status == 200
        assert r.headers["X-Model"] == "gpt-4o-mini"
        assert r.headers["X-Request-Id"].startswith("req_")
        body = await r.read()
    events = body.split(b"\n\n")
    assert events[-1] == b""
    assert events[-2] == b"data: [DONE]"
    assert events[-3].startswith(b": x-usage-cost ")
    cost = parse_usd(events[-3].split(b" ")[-1].decode())
    wallet = await gateway.wallet(account)
    assert parse_usd(wallet["balance"]) == parse_usd("10.00") - cost
    # Every other event is byte-for-byte an upstream event, in order.
    assert [e for e in events[:-3]] == [e for e in events[:-3] if e.startswith(b"data: {")]


async def test_first_chunk_arrives_before_the_upstream_finishes(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    import asyncio

    _, key = await gateway.account()
    upstream.gate = asyncio.Event()
    stream = await gateway.openai(key).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    iterator = stream.__aiter__()
    first = await asyncio.wait_for(iterator.__anext__(), timeout=5)
    assert first.choices[0].delta.role == "assistant"
    assert not upstream.finished.is_set()
    upstream.gate.set()
    rest = [c async for c in iterator]
    assert rest and upstream.finished.is_set()


async def test_embeddings(gateway: Gateway, upstream: FakeUpstream) -> None:
    account, key = await gateway.account()
    raw = await gateway.openai(key).embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["first text", "second one"]
    )
    result = raw.parse()
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    tokens = result.usage.prompt_tokens
    assert parse_usd(raw.headers["x-usage-cost"]) == -(-tokens * 20_000_000 // 1_000_000)
    wallet = await gateway.wallet(account)
    assert parse_usd(wallet["balance"]) == parse_usd("10.00") - parse_usd(
        raw.headers["x-usage-cost"]
    )


async def test_sum_of_costs_equals_what_left_the_wallet_over_100_mixed_requests(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account(topup="5.00")
    client = gateway.openai(key)
    total = 0
    for i in range(100):
        kind = i % 4
        if kind == 0:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"question {i} " * i}]
            )
            total += parse_usd(raw.headers["x-usage-cost"])
        elif kind == 1:
            raw = await client.embeddings.with_raw_response.create(
                model="text-embedding-3-small", input=f"text {i} " * i
            )
            total += parse_usd(raw.headers["x-usage-cost"])
        else:
            async with gateway.http.post(
                gateway.url + "/v1/chat/completions",
                json={
                    "model": "gpt-4o-mini",
                    "stream": True,
                    "max_tokens": 5 + i,
                    "stream_options": {"include_usage": kind == 3},
                    "messages": [{"role": "user", "content": f"stream {i} " * i}],
                },
                headers={"Authorization": f"Bearer {key}"},
            ) as r:
                body = await r.read()
            line = next(e for e in body.split(b"\n\n") if e.startswith(b": x-usage-cost "))
            total += parse_usd(line.split(b" ")[-1].decode())
    wallet = await gateway.wallet(account)
    assert total > 0
    assert parse_usd("5.00") - parse_usd(wallet["balance"]) == total
    assert Decimal(wallet["held"]) == 0


async def test_mock_provider_answers_with_no_key(gateway: Gateway) -> None:
    _, key = await gateway.account()
    completion = await gateway.openai(key).chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content is not None
    assert completion.usage is not None and completion.usage.completion_tokens > 0


async def test_unknown_key_is_401(gateway: Gateway, upstream: FakeUpstream) -> None:
    client = gateway.openai("tg-not-a-real-key")
    with pytest.raises(openai.AuthenticationError) as info:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.code == "invalid_api_key"
    assert upstream.requests == []
