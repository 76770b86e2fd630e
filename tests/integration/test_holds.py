"""Never overspend, never lose a charge: holds across processes, crashes, partial streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from gateway.apis.tokens import TokenCounter
from gateway.store.keys import AccountKeys
from pricing import compute_cost, parse_pricing, parse_usd
from pricing.usage import Usage
from tests.integration.conftest import PRICING, Gateway, remote
from tests.support.fake_upstream import FakeUpstream
from tests.support.ledger import request_status
from tests.support.processes import GatewayProcess

pytestmark = pytest.mark.redis_cluster_too

Spawn = Callable[..., Awaitable[GatewayProcess]]
PRICES = parse_pricing(PRICING, source="test")


async def chat(
    gw: Gateway, key: str, *, stream: bool = False, model: str = "gpt-flat", **extra: Any
) -> tuple[int, bytes, dict[str, str]]:
    body = {"model": model, "stream": stream,
            "messages": [{"role": "user", "content": "hello there"}], **extra}  # fmt: skip
    async with gw.http.post(gw.url + "/v1/chat/completions", json=body,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        return r.status, await r.read(), {k.lower(): v for k, v in r.headers.items()}


async def record(gw: Gateway, key: str, rid: str) -> dict[str, Any]:
    async with gw.http.get(f"{gw.url}/v1/requests/{rid}",
                           headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        assert r.status == 200
        return await r.json()  # type: ignore[no-any-return]


async def settled_record(gw: Gateway, key: str, rid: str) -> dict[str, Any]:
    for _ in range(200):
        rec = await record(gw, key, rid)
        if rec["status"] != "pending":
            return rec
        await asyncio.sleep(0.025)
    raise AssertionError(f"{rid} never settled")


async def settled_wallet(gws: list[Gateway], account: str) -> dict[str, str]:
    """The wallet once every gateway's settles have been applied: a process answers before
    its certain settles reach Redis, and only its own wallet reads wait for them, so read
    through each in turn and keep the last."""
    for gw in gws:
        wallet = await gw.wallet(account)
    return wallet


async def watch_balance(redis: Any, account: str, stop: asyncio.Event, seen: list[int]) -> None:
    k = AccountKeys(account)
    while not stop.is_set():
        cash, held = await redis.hmget(k.wallet, ["cash", "held"])
        seen.append(int(cash or 0) - int(held or 0))
        await asyncio.sleep(0.002)


@pytest.mark.parametrize("stream", [False, True])
async def test_zero_overspend_across_two_processes(
    spawn: Spawn, redis: Any, upstream: FakeUpstream, stream: bool
) -> None:
    n = 5  # gpt-flat costs 0.002 a request: the wallet pays for exactly n
    a, b = await spawn(), await spawn()
    async with aiohttp.ClientSession() as http:
        gws = [remote(a, http), remote(b, http)]
        account, key = await gws[0].account(topup="0.010")
        stop, seen = asyncio.Event(), []
        watcher = asyncio.create_task(watch_balance(redis, account, stop, seen))
        results = await asyncio.gather(
            *(chat(gws[i % 2], key, stream=stream) for i in range(20 * n))
        )
        stop.set()
        await watcher
        statuses = sorted(s for s, _, _ in results)
        assert statuses.count(200) == n
        assert set(statuses) == {200, 403}
        assert min(seen) >= 0
        wallet = await settled_wallet(gws, account)
        assert wallet["balance"] == "0.00" and wallet["held"] == "0.00"
        assert len(upstream.requests) == n


async def test_strict_tokens_never_below_zero_across_two_processes(
    spawn: Spawn, redis: Any, upstream: FakeUpstream
) -> None:
    a, b = await spawn(), await spawn()
    async with aiohttp.ClientSession() as http:
        gws = [remote(a, http), remote(b, http)]
        account, key = await gws[0].account(topup="0.0005")
        stop, seen = asyncio.Event(), []
        watcher = asyncio.create_task(watch_balance(redis, account, stop, seen))
        results = await asyncio.gather(
            *(chat(gws[i % 2], key, model="gpt-4o-mini", max_tokens=200, stream=i % 3 == 0)
              for i in range(100))
        )  # fmt: skip
        stop.set()
        await watcher
        ok = [r for r in results if r[0] == 200]
        assert ok and len(ok) < 100
        assert min(seen) >= 0
        wallet = await settled_wallet(gws, account)
        assert parse_usd(wallet["balance"]) >= 0 and wallet["held"] == "0.00"


async def test_a_killed_gateways_holds_are_released_once_after_the_deadline(
    spawn: Spawn, redis: Any, upstream: FakeUpstream
) -> None:
    doomed = await spawn(hold_ttl=1.5)
    survivor = await spawn(hold_ttl=1.5)
    upstream.gate = asyncio.Event()  # streams stop after their first chunk
    async with aiohttp.ClientSession() as http:
        gw = remote(doomed, http)
        account, key = await gw.account(topup="1.00")
        responses = []
        for _ in range(3):
            r = await http.post(gw.url + "/v1/chat/completions",
                                json={"model": "gpt-4o-mini", "stream": True, "max_tokens": 50,
                                      "messages": [{"role": "user", "content": "hi"}]},
                                headers={"Authorization": f"Bearer {key}"})  # fmt: skip
            await r.content.readuntil(b"\n\n")  # admitted, held and forwarded
            responses.append(r)
        held = parse_usd((await gw.wallet(account))["held"])
        assert held > 0
        doomed.kill()
        for r in responses:
            r.close()
        other = remote(survivor, http)
        for _ in range(200):  # the survivor's reaper (or this read) releases them
            wallet = await other.wallet(account)
            if wallet["held"] == "0.00":
                break
            await asyncio.sleep(0.05)
        assert wallet == {**wallet, "held": "0.00", "balance": "1.00"}
        assert int(await redis.hget(AccountKeys(account).wallet, "held")) == 0
        upstream.gate.set()


async def test_disconnect_after_k_chunks_charges_input_plus_k_chunks(
    gateway: Gateway, upstream: FakeUpstream, counter: TokenCounter
) -> None:
    account, key = await gateway.account()
    upstream.chunk_delay = 0.05
    k = 4
    payload = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "one two three four five six seven"}],
    }
    async with gateway.http.post(gateway.url + "/v1/chat/completions", json=payload,
                                 headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        rid = r.headers["x-request-id"]
        received = []
        while len(received) < k + 1:  # the role chunk, then k content chunks
            received.append(await r.content.readuntil(b"\n\n"))
        r.connection.transport.close()  # type: ignore[union-attr]
    rec = await settled_record(gateway, key, rid)
    import orjson

    text = "".join(orjson.loads(e[6:])["choices"][0]["delta"].get("content", "")
                   for e in received)  # fmt: skip
    assert rec["usage_source"] == "partial"
    expected_out = counter.count(text, "gpt-4o-mini")
    assert abs(rec["usage"]["output_tokens"] - expected_out) <= k
    expected_in = counter.estimate_prompt(payload, "gpt-4o-mini", safety=False)
    assert rec["usage"]["input_tokens"] == expected_in
    price = PRICES.lookup("gpt-4o-mini")
    assert price is not None
    usage = Usage(input_tokens=expected_in, output_tokens=rec["usage"]["output_tokens"])
    assert parse_usd(rec["cost"]) == compute_cost(usage, price)
    wallet = await gateway.wallet(account)
    assert parse_usd("10.00") - parse_usd(wallet["balance"]) == parse_usd(rec["cost"])
    assert wallet["held"] == "0.00"


async def stream_cut_after_three_words(
    gateway: Gateway, counter: TokenCounter, account: str, key: str
) -> bytes:
    """Stream a chat whose upstream goes wrong after the role chunk and 3 words; check it
    was charged an estimate for those words, said so in its cost comment, and held nothing.
    Returns the body the client got."""
    async with asyncio.timeout(30):  # a stream the gateway fails to end must not hang the test
        status, body, headers = await chat(gateway, key, model="gpt-4o-mini", stream=True)
    assert status == 200
    rec = await settled_record(gateway, key, headers["x-request-id"])
    assert rec["usage_source"] == "estimated"
    assert rec["usage"]["output_tokens"] == counter.count("This is gpt-4o-mini,", "gpt-4o-mini")
    assert b": x-usage-cost " + rec["cost"].encode() in body
    assert (await gateway.wallet(account))["held"] == "0.00"
    return body


async def test_upstream_breaking_mid_stream_charges_what_was_relayed(
    gateway: Gateway, upstream: FakeUpstream, counter: TokenCounter
) -> None:
    account, key = await gateway.account()
    upstream.drop_after = 4  # role chunk + 3 words, then the connection drops
    await stream_cut_after_three_words(gateway, counter, account, key)


async def test_an_event_that_never_ends_ends_the_stream_and_charges_what_was_relayed(
    gateway: Gateway, upstream: FakeUpstream, counter: TokenCounter
) -> None:
    account, key = await gateway.account()
    upstream.runaway_after = 4  # role chunk + 3 words, then 2 MiB without an event end
    body = await stream_cut_after_three_words(gateway, counter, account, key)
    assert b"xxxx" not in body


async def test_stream_without_usage_is_estimated(gateway: Gateway, upstream: FakeUpstream) -> None:
    _, key = await gateway.account()
    upstream.omit_usage = True
    status, body, headers = await chat(gateway, key, model="gpt-4o-mini", stream=True)
    assert status == 200 and body.endswith(b"data: [DONE]\n\n")
    rec = await settled_record(gateway, key, headers["x-request-id"])
    assert rec["usage_source"] == "estimated" and rec["usage"]["output_tokens"] > 0
    assert parse_usd(rec["cost"]) > 0


async def test_upstream_timeout_is_504_and_free(make_gateway: Any, upstream: FakeUpstream) -> None:
    gateway = await make_gateway(read_timeout=0.3)
    account, key = await gateway.account()
    upstream.delay = 2.0
    status, body, _ = await chat(gateway, key)
    assert status == 504
    assert b'"upstream_timeout"' in body
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "10.00" and wallet["held"] == "0.00"


async def test_shutdown_mid_stream_still_settles(
    spawn: Spawn, redis: Any, upstream: FakeUpstream
) -> None:
    proc = await spawn(shutdown_timeout=0.5)
    upstream.gate = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        gw = remote(proc, http)
        account, key = await gw.account(topup="1.00")
        r = await http.post(gw.url + "/v1/chat/completions",
                            json={"model": "gpt-4o-mini", "stream": True, "max_tokens": 50,
                                  "messages": [{"role": "user", "content": "hi"}]},
                            headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        rid = r.headers["x-request-id"]
        await r.content.readuntil(b"\n\n")
        proc.stop()  # SIGTERM: the handler is cancelled after shutdown_timeout
        with contextlib.suppress(aiohttp.ClientError):
            await r.read()
        r.close()
        upstream.gate.set()
        k = AccountKeys(account)
        assert int(await redis.hget(k.wallet, "held")) == 0
        assert await request_status(redis, account, rid) == "settled"


async def test_postpaid_may_end_slightly_negative_then_refuses(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account(topup="0.0001", hold_policy="postpaid")
    upstream.usage_override = {
        "prompt_tokens": 1000,
        "completion_tokens": 1000,
        "total_tokens": 2000,
    }  # costs 0.00075: more than the balance
    status, _, headers = await chat(gateway, key, model="gpt-4o-mini")
    assert status == 200 and headers["x-usage-cost"] == "0.00075"
    assert headers["x-balance-remaining"] == "-0.00065"
    status, body, _ = await chat(gateway, key, model="gpt-4o-mini")
    assert status == 403 and b"insufficient_balance" in body
    wallet = await gateway.wallet(account)
    assert wallet["balance"] == "-0.00065" and wallet["held"] == "0.00"


async def test_strict_refuses_when_the_worst_case_exceeds_the_balance(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account(topup="0.0001")
    # 1000 output tokens at 0.60 / 1M = 0.0006 worst case > 0.0001
    status, body, _ = await chat(gateway, key, model="gpt-4o-mini", max_tokens=1000)
    assert status == 403 and b"may cost up to 0.0006" in body
    status, _, _ = await chat(gateway, key, model="gpt-4o-mini", max_tokens=50)
    assert status == 200
    assert upstream.requests and len(upstream.requests) == 1
    assert parse_usd((await gateway.wallet(account))["balance"]) >= 0
