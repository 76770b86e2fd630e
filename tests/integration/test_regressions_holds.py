"""Regressions from review: holds must keep covering a request that is still running, and
must bound what the settle charges, so a strict wallet never ends below zero."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import pytest

from gateway.store.keys import AccountKeys
from pricing import parse_usd
from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream
from tests.support.ledger import assert_ledger_identity, charge_statuses


async def _post(gw: Gateway, key: str, path: str, body: dict[str, Any]) -> tuple[int, bytes, Any]:
    async with gw.http.post(gw.url + path, json=body,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        return r.status, await r.read(), {k.lower(): v for k, v in r.headers.items()}


async def test_hold_of_a_live_stream_expires_and_strict_wallet_overspends(
    make_gateway: Any, upstream: FakeUpstream, redis: Any
) -> None:
    """hold_ttl (default 900 s) is shorter than total_timeout (3600 s): a request that is
    still streaming loses its hold at the deadline, the money is admitted again, and both
    requests are charged. Scaled down here: hold_ttl=0.5 s, a stream that lasts ~2 s."""
    gw = await make_gateway(hold_ttl=0.5)
    # gpt-flat: exactly 0.002 per request, held and charged. The wallet pays for ONE.
    account, key = await gw.account(topup="0.002")
    upstream.gate = asyncio.Event()  # the stream pauses after its first chunk
    async with gw.http.post(
        gw.url + "/v1/chat/completions",
        json={"model": "gpt-flat", "stream": True,
              "messages": [{"role": "user", "content": "hello there"}]},
        headers={"Authorization": f"Bearer {key}"},
    ) as first:  # fmt: skip
        assert first.status == 200
        await first.content.readuntil(b"\n\n")  # admitted (0.002 held) and streaming
        assert (await gw.wallet(account))["balance"] == "0.00"
        await asyncio.sleep(1.5)  # past hold_ttl; the stream is alive and well
        again = {"model": "gpt-flat", "messages": [{"role": "user", "content": "again"}]}
        status, _, _ = await _post(gw, key, "/v1/chat/completions", again)
        upstream.gate.set()
        rest = await first.read()
    assert b"[DONE]" in rest
    wallet = await gw.wallet(account)
    # Strict policy: the second request must have been refused, the balance never below 0.
    assert status == 403, f"second request admitted while the first still ran: {wallet}"
    assert parse_usd(wallet["balance"]) >= 0, wallet


async def test_legacy_completions_prompt_array_is_held_for_one_prompt_only(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """/v1/completions with ``prompt`` as a list of k strings returns k * n choices, each up to
    max_tokens; worst_case() holds ``max_tokens * n`` only, so a strict wallet goes negative."""
    account, key = await gateway.account(topup="0.00008")
    prompts = ["a", "b", "c", "d", "e", "f", "g", "h"]
    # What OpenAI reports for 8 prompts x 100 tokens each (the usage the gateway must bill).
    upstream.usage_override = {"prompt_tokens": 8, "completion_tokens": 800,
                               "total_tokens": 808}  # fmt: skip
    request = {"model": "gpt-4o-mini", "prompt": prompts, "max_tokens": 100}
    status, body, _ = await _post(gateway, key, "/v1/completions", request)
    # The hold is 8 prompts x 100 tokens (0.00048 and more): refused, nothing forwarded.
    assert status == 403 and b"insufficient_balance" in body
    assert upstream.requests == []
    await gateway.admin("POST", f"/admin/accounts/{account}/topups",
                        {"amount": "0.001", "order_id": "more"})  # fmt: skip
    status, body, headers = await _post(gateway, key, "/v1/completions", request)
    assert status == 200, body
    assert headers["x-usage-cost"] == "0.0004812"  # 8 x 0.15 + 800 x 0.60 per 1M
    wallet = await gateway.wallet(account)
    assert parse_usd(wallet["balance"]) >= 0, (headers["x-usage-cost"], wallet)


async def test_completions_best_of_is_not_in_the_hold(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """``best_of`` makes OpenAI generate (and bill) best_of completions server-side."""
    account, key = await gateway.account(topup="0.00008")
    upstream.usage_override = {"prompt_tokens": 2, "completion_tokens": 500,
                               "total_tokens": 502}  # fmt: skip
    request = {"model": "gpt-4o-mini", "prompt": "hi", "best_of": 5, "max_tokens": 100}
    status, body, _ = await _post(gateway, key, "/v1/completions", request)
    assert status == 403 and upstream.requests == []  # held for 5 x 100 tokens
    await gateway.admin("POST", f"/admin/accounts/{account}/topups",
                        {"amount": "0.001", "order_id": "more"})  # fmt: skip
    status, body, _ = await _post(gateway, key, "/v1/completions", request)
    assert status == 200, body
    wallet = await gateway.wallet(account)
    assert parse_usd(wallet["balance"]) >= 0, wallet


PDF_DOCUMENT = {"type": "document",
                "source": {"type": "base64", "media_type": "application/pdf",
                           "data": "JVBERi0xLjQK" * 2000}}  # fmt: skip


async def test_anthropic_document_block_is_held_as_zero_tokens(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """tokens._collect counts a ``document`` (PDF) block as 0 tokens, so the hold leaves out
    the whole document, which Anthropic bills as input (here 30,000 tokens)."""
    account, key = await gateway.account(topup="0.01")
    upstream.usage_override = {"input_tokens": 30_000}
    request = {
        "model": "claude-sonnet-4-6", "max_tokens": 20,
        "messages": [{"role": "user", "content": [PDF_DOCUMENT,
                                                  {"type": "text", "text": "Summarize"}]}],
    }  # fmt: skip
    status, body, _ = await _post(gateway, key, "/v1/messages", request)
    # 18 kB of PDF is held as up to 36,000 tokens: more than 0.01 pays for.
    assert status == 403 and upstream.requests == []
    await gateway.admin("POST", f"/admin/accounts/{account}/topups",
                        {"amount": "0.20", "order_id": "more"})  # fmt: skip
    status, body, headers = await _post(gateway, key, "/v1/messages", request)
    assert status == 200, body
    out = orjson.loads(body)["usage"]["output_tokens"]
    # 30,000 input at 3.00 plus the reply's output tokens at 15.00, per 1M tokens
    assert parse_usd(headers["x-usage-cost"]) == 30_000 * 3_000 + out * 15_000
    wallet = await gateway.wallet(account)
    assert parse_usd(wallet["balance"]) >= 0, (headers["x-usage-cost"], wallet)


async def test_partial_anthropic_stream_ignores_the_exact_input_count_it_relayed(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """A client that hangs up mid-stream is billed an *estimate* of the prompt even though
    message_start (already relayed to it) carried Anthropic's exact input_tokens. With a PDF
    the estimate is ~0: 30,000 input tokens are paid to Anthropic and never billed."""
    _, key = await gateway.account(topup="1.00")
    upstream.usage_override = {"input_tokens": 30_000}
    upstream.gate = asyncio.Event()  # pause after message_start
    async with gateway.http.post(
        gateway.url + "/v1/messages",
        json={"model": "claude-sonnet-4-6", "max_tokens": 20, "stream": True,
              "messages": [{"role": "user", "content": [PDF_DOCUMENT,
                                                        {"type": "text", "text": "Sum up"}]}]},
        headers={"Authorization": f"Bearer {key}"},
    ) as r:  # fmt: skip
        rid = r.headers["x-request-id"]
        start = await r.content.readuntil(b"\n\n")
        assert b'"input_tokens":30000' in start  # the client has the exact count
        r.connection.transport.close()  # type: ignore[union-attr]
    upstream.gate.set()
    rec: dict[str, Any] = {}
    for _ in range(200):
        rec = await gateway.record(key, rid)
        if rec["status"] != "pending":
            break
        await asyncio.sleep(0.025)
    assert rec["usage_source"] == "partial", rec
    assert rec["usage"]["input_tokens"] >= 30_000, rec["usage"]


async def test_transcription_rounded_up_seconds_overspend_a_strict_wallet(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """No override at all: OpenAI (and the mock) report ``usage.seconds`` rounded up to a whole
    second, the hold is the WAV's exact length. A 2.5 s file is held at 0.00025 and charged
    0.0003; a strict wallet holding exactly 0.00025 ends at -0.00005."""
    from tests.integration.test_audio import form, post_form, wav

    account, key = await gateway.account(topup="0.00025")
    body = form([("model", "whisper-1")], [("file", "speech.wav", wav(2.5))])
    status, headers, data = await post_form(gateway, key, body)
    assert status == 403, data  # held at 3 whole seconds: 0.0003
    await gateway.admin("POST", f"/admin/accounts/{account}/topups",
                        {"amount": "0.00005", "order_id": "more"})  # fmt: skip
    status, headers, data = await post_form(gateway, key, body)
    assert status == 200, data
    assert headers["X-Usage-Cost"] == "0.0003"
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "0.00", (headers.get("X-Usage-Cost"), wallet)


async def test_a_request_cancelled_during_its_admission_leaves_no_hold(
    gateway: Gateway, upstream: FakeUpstream, redis: Any
) -> None:
    """The client goes away while Redis has its admission script but has not run it yet: the
    hold it then places is released at once (the review found it waited for hold_ttl)."""
    info = await redis.info("server")
    if int(str(info["redis_version"]).split(".")[0]) < 7:
        pytest.skip("CLIENT PAUSE WRITE pauses scripts only from Redis 7")  # pragma: no cover
    account, key = await gateway.account(topup="1.00")
    body = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]}
    # One request first: Redis then knows the script, so the paused one is no NOSCRIPT (whose
    # reload a cancelled call never sends: that admission would never run at all).
    status, _, headers = await _post(gateway, key, "/v1/chat/completions", body)
    assert status == 200
    cost = parse_usd(headers["x-usage-cost"])
    await redis.execute_command("CLIENT", "PAUSE", 500, "WRITE")  # admissions wait in Redis
    request = asyncio.create_task(_post(gateway, key, "/v1/chat/completions", body))
    await asyncio.sleep(0.2)  # authenticated, parsed, its admission sent and waiting
    request.cancel()  # the client goes: aiohttp cancels the handler mid-admission
    with contextlib.suppress(asyncio.CancelledError):
        await request
    wallet = await gateway.wallet(account)  # waits for the pause, then for this process's settle
    assert (wallet["held"], parse_usd(wallet["balance"])) == ("0.00", parse_usd("1.00") - cost)
    k = AccountKeys(account)
    assert int(await redis.hget(k.wallet, "held")) == 0  # placed, then released
    statuses = await charge_statuses(redis, account)
    assert statuses == ["failed", "settled"]  # the cancelled one is on the books, at no cost
    assert len(upstream.requests) == 1  # the cancelled one was never forwarded
    await assert_ledger_identity(redis)
