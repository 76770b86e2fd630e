"""Anthropic's Messages API through the gateway, driven by the official anthropic SDK."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson
import pytest

from pricing import parse_usd
from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream

# claude-sonnet-4-6 in the test price table, USD per 1M tokens:
# input 3.00, output 15.00, cache_read 0.30, cache_write 3.75 (5 minutes), cache_write_1h 6.00.
IN, OUT, READ, WRITE = 3_000_000_000, 15_000_000_000, 300_000_000, 3_750_000_000

CACHED_USAGE = {
    "input_tokens": 1200,
    "cache_creation_input_tokens": 2000,
    "cache_read_input_tokens": 10000,
    "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 350,
}
# 1200 * 3.00 + 350 * 15.00 + 10000 * 0.30 + 2000 * 3.75 per 1M tokens
# = (3_600 + 5_250 + 3_000 + 7_500) / 1M USD = 19_350 / 1M = 0.01935 USD
CACHED_COST = "0.01935"

MESSAGES = [{"role": "user", "content": "Hello, Claude"}]


def cost_of(u: Any) -> int:
    scaled = (
        u.input_tokens * IN
        + u.output_tokens * OUT
        + (u.cache_read_input_tokens or 0) * READ
        + (u.cache_creation_input_tokens or 0) * WRITE
    )
    return -(-scaled // 1_000_000)


async def test_plain_message_bills_every_bucket(gateway: Gateway, upstream: FakeUpstream) -> None:
    account, key = await gateway.account()
    upstream.usage_override = CACHED_USAGE
    client = gateway.anthropic(key)
    raw = await client.messages.with_raw_response.create(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=MESSAGES,
        extra_headers={
            "anthropic-beta": "prompt-caching-2024-07-31",
            "anthropic-version": "2023-06-01",
        },
    )
    message = await raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("This is claude-sonnet-4-6")
    assert raw.headers["x-usage-cost"] == CACHED_COST
    assert parse_usd(CACHED_COST) == cost_of(message.usage)
    assert raw.headers["x-model"] == "claude-sonnet-4-6"
    assert raw.headers["x-total-tokens"] == str(1200 + 350 + 10000 + 2000)
    wallet = await gateway.wallet(account)
    assert parse_usd(wallet["balance"]) == parse_usd("10.00") - parse_usd(CACHED_COST)
    assert wallet["held"] == "0.00"

    record = await gateway.record(key, raw.headers["x-request-id"])
    assert record["usage"] == {
        "input_tokens": 1200,
        "output_tokens": 350,
        "cache_read_tokens": 10000,
        "cache_write_tokens": 2000,
        "cache_write_1h_tokens": 0,
        "reasoning_tokens": 0,
        "total_tokens": 13550,
        "images": 0,
        "audio_ms": 0,
    }
    assert record["usage_source"] == "upstream" and record["endpoint"] == "/messages"

    # Upstream auth is Anthropic's: our provider key in x-api-key, never the client's key.
    sent = {k.lower(): v for k, v in upstream.headers[-1].items()}
    assert sent["x-api-key"] == "sk-ant-upstream-secret"
    assert "authorization" not in sent
    assert sent["anthropic-version"] == "2023-06-01"
    assert sent["anthropic-beta"] == "prompt-caching-2024-07-31"


async def test_one_hour_cache_writes_are_billed_at_their_own_price(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _, key = await gateway.account()
    upstream.usage_override = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
        "output_tokens": 20,
    }
    raw = await gateway.anthropic(key).messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES
    )
    # 10 * 3.00 + 20 * 15.00 + 1000 * 3.75 (5-minute writes) + 2000 * 6.00 (1-hour writes)
    # = 30 + 300 + 3_750 + 12_000 = 16_080 per 1M = 0.01608 USD
    assert raw.headers["x-usage-cost"] == "0.01608"
    record = await gateway.record(key, raw.headers["x-request-id"])
    assert record["usage"]["cache_write_tokens"] == 1000
    assert record["usage"]["cache_write_1h_tokens"] == 2000


async def test_streamed_message_takes_the_last_cumulative_usage(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account()
    # message_start carries these with output_tokens 1; message_delta repeats the cumulative
    # input and cache counts with output_tokens 350. Adding them up would bill 2400 input,
    # 4000 cache writes, 20000 cache reads and 351 output tokens.
    upstream.usage_override = CACHED_USAGE
    client = gateway.anthropic(key)
    async with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=1024, messages=MESSAGES
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text.startswith("This is claude-sonnet-4-6")
    assert final.usage.output_tokens == 350 and final.usage.input_tokens == 1200
    wallet = await gateway.wallet(account)
    assert parse_usd("10.00") - parse_usd(wallet["balance"]) == parse_usd(CACHED_COST)
    assert wallet["held"] == "0.00"


async def test_stream_cost_comment_sits_right_before_message_stop(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account()
    upstream.usage_override = CACHED_USAGE
    async with gateway.http.post(
        gateway.url + "/v1/messages",
        json={
            "model": "claude-sonnet-4-6",
            "max_tokens": 1024,
            "stream": True,
            "messages": MESSAGES,
        },
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    ) as r:
        assert r.status == 200
        assert r.headers["X-Model"] == "claude-sonnet-4-6"
        rid = r.headers["X-Request-Id"]
        body = await r.read()
    blocks = body.split(b"\n\n")
    assert blocks[-1] == b""
    assert blocks[-2] == b'event: message_stop\ndata: {"type":"message_stop"}'
    assert blocks[-3] == b": x-usage-cost " + CACHED_COST.encode()
    names = [b.split(b"\n")[0] for b in blocks[:-3]]
    assert names[:3] == [b"event: message_start", b"event: content_block_start", b"event: ping"]
    assert names[-2:] == [b"event: content_block_stop", b"event: message_delta"]
    # The upstream's message_delta really is cumulative (a sum would double the input).
    delta = orjson.loads(blocks[-4].split(b"data: ", 1)[1])
    assert delta["usage"]["input_tokens"] == 1200 and delta["usage"]["output_tokens"] == 350
    wallet = await gateway.wallet(account)
    assert parse_usd("10.00") - parse_usd(wallet["balance"]) == parse_usd(CACHED_COST)
    record = await gateway.record(key, rid)
    assert record["usage"]["input_tokens"] == 1200 and record["usage"]["output_tokens"] == 350
    assert record["usage_source"] == "upstream" and record["stream"] is True


async def test_a_request_without_anthropic_version_gets_the_default(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _, key = await gateway.account()
    async with gateway.http.post(
        gateway.url + "/v1/messages",
        json={"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": MESSAGES},
        headers={"Authorization": f"Bearer {key}"},
    ) as r:
        assert r.status == 200
    sent = {k.lower(): v for k, v in upstream.headers[-1].items()}
    assert sent["anthropic-version"] == "2023-06-01"
    assert sent["x-api-key"] == "sk-ant-upstream-secret"


async def test_mock_provider_speaks_messages(gateway: Gateway) -> None:
    account, key = await gateway.account()
    client = gateway.anthropic(key)
    raw = await client.messages.with_raw_response.create(
        model="mock-claude", max_tokens=200, system="You are terse.", messages=MESSAGES
    )
    message = await raw.parse()
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    # mock-claude: input 3.00, output 15.00 per 1M tokens, no cache use.
    assert parse_usd(raw.headers["x-usage-cost"]) == cost_of(message.usage)
    async with client.messages.stream(
        model="mock-claude", max_tokens=5, messages=MESSAGES
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens <= 5
    wallet = await gateway.wallet(account)
    spent = parse_usd("10.00") - parse_usd(wallet["balance"])
    assert spent == cost_of(message.usage) + cost_of(final.usage)


async def test_bearer_auth_works_too(gateway: Gateway, upstream: FakeUpstream) -> None:
    _, key = await gateway.account()
    client = anthropic.AsyncAnthropic(base_url=gateway.url, auth_token=key, max_retries=0)
    gateway.clients.append(client)
    message = await client.messages.create(
        model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES
    )
    assert message.usage.input_tokens > 0


async def test_gateway_errors_raise_the_sdks_exception_classes(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _, key = await gateway.account(topup="0.001")
    client = gateway.anthropic(key)
    # 1000 output tokens at 15.00 per 1M may cost 0.015 USD: more than the wallet holds.
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        await client.messages.create(model="claude-sonnet-4-6", max_tokens=1000, messages=MESSAGES)
    assert denied.value.status_code == 403
    assert denied.value.body["error"]["code"] == "insufficient_balance"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as unpriced:
        await client.messages.create(model="claude-unpriced", max_tokens=10, messages=MESSAGES)
    assert unpriced.value.body["error"]["code"] == "model_not_priced"  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError):
        await gateway.anthropic("tg-wrong").messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=MESSAGES
        )
    assert upstream.requests == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "claude-sonnet-4-6", "messages": []}',
        b'{"model": "claude-sonnet-4-6", "max_tokens": 0, "messages": []}',
        b'{"model": "claude-sonnet-4-6", "max_tokens": "10", "messages": []}',
        b'{"model": "claude-sonnet-4-6", "max_tokens": true, "messages": []}',
        b'{"model": "claude-sonnet-4-6", "max_tokens": 10, "stream": 1}',
        b'{"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [',
        b"[]",
        b"",
    ],
)
async def test_bad_requests_are_openai_shaped_400s(
    gateway: Gateway, upstream: FakeUpstream, body: bytes
) -> None:
    account, key = await gateway.account()
    async with gateway.http.post(
        gateway.url + "/v1/messages",
        data=body,
        headers={"x-api-key": key, "Content-Type": "application/json"},
    ) as r:
        assert r.status == 400
        error = (await r.json())["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_request"
    assert upstream.requests == []
    assert (await gateway.wallet(account))["balance"] == "10.00"


async def test_upstream_error_is_passed_through_and_free(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account()
    upstream.status = 529
    with pytest.raises(anthropic.APIStatusError) as info:
        await gateway.anthropic(key).messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=MESSAGES
        )
    assert info.value.status_code == 529
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "10.00" and wallet["held"] == "0.00"
