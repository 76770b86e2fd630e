"""A call nobody waits on (a settle whose answer went out) lingers, to share a write with the
next call: it leaves with the next urgent call, by itself after the linger time, or at once
when a read of the wallet needs it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from gateway.accounts import Directory
from gateway.app import create_app
from gateway.fastredis import FastScripts
from gateway.rediskeys import AccountKeys
from gateway.scripts import all_sources
from gateway.tokens import TokenCounter
from gateway.wallet import Admission, Limits, Wallet
from pricing import parse_pricing
from tests.integration.conftest import ADMIN_SHA, PRICING, Gateway, make_settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.redis_server import RedisServer

INCR = {"incr": "return redis.call('INCR', KEYS[1])"}


@pytest.fixture
async def probe(redis_server: RedisServer) -> AsyncIterator[Any]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_lingering_call_leaves_with_the_next_urgent_one_and_runs_first(
    redis_server: RedisServer, probe: Any
) -> None:
    scripts = FastScripts(redis_server.url, INCR, linger=60.0)
    key = f"linger:{uuid.uuid4().hex}"
    try:
        await scripts.call("incr", [key + ":warm"], [])  # connected
        lazy = asyncio.ensure_future(scripts.call("incr", [key], [], linger=True))
        await turns()
        assert await probe.get(key) is None  # not sent yet: it waits for company
        assert not lazy.done()
        assert await scripts.call("incr", [key], []) == 2  # went second, in the same write
        assert await lazy == 1
    finally:
        await scripts.aclose()


async def test_a_lingering_call_leaves_by_itself_after_the_linger_time(
    redis_server: RedisServer, probe: Any
) -> None:
    scripts = FastScripts(redis_server.url, INCR, linger=0.05)
    key = f"linger:{uuid.uuid4().hex}"
    try:
        assert await asyncio.wait_for(scripts.call("incr", [key], [], linger=True), 5) == 1
        assert await probe.get(key) == b"1"
    finally:
        await scripts.aclose()


async def test_lingering_calls_keep_their_order_and_a_hurry_sends_them_now(
    redis_server: RedisServer,
) -> None:
    scripts = FastScripts(redis_server.url, INCR, linger=60.0)
    key = f"linger:{uuid.uuid4().hex}"
    try:
        await scripts.call("incr", [key + ":warm"], [])
        lazy = [asyncio.ensure_future(scripts.call("incr", [key], [], linger=True))
                for _ in range(3)]  # fmt: skip
        await turns()
        assert not any(t.done() for t in lazy)
        scripts.hurry()
        assert await asyncio.wait_for(asyncio.gather(*lazy), 5) == [1, 2, 3]
    finally:
        await scripts.aclose()


async def test_a_read_of_the_wallet_does_not_wait_for_a_lingering_settle(
    redis_server: RedisServer,
) -> None:
    """The settle of an answer already sent lingers; the client's next read of its wallet
    hurries it out, and sees the charge."""
    redis = aioredis.Redis.from_url(redis_server.url)
    scripts = FastScripts(redis_server.url, all_sources(), linger=60.0)
    try:
        account = (await Directory(redis).create_account({"name": "t", "plan": "p"})).id
        wallet = Wallet(redis, scripts)
        await wallet.move_money(account, kind="topup", amount=1_000_000, order_id="seed")
        admitted = await wallet.admit(
            account, request_id="r1", key_id="k", hold=500_000, policy="strict", est_tokens=10,
            limits=Limits(), hold_ttl_ms=60_000, record_ttl=60, record={"model": "m"},
        )  # fmt: skip
        assert isinstance(admitted, Admission)
        settle = asyncio.ensure_future(wallet.settle(
            account, request_id="r1", key_id="k", cost=123_456, tokens=5, limits=Limits(),
            record_ttl=60, record={"status": "settled"}, linger=True,
        ))  # fmt: skip
        wallet.settling(account, settle)
        await turns()
        assert not settle.done()
        view = await asyncio.wait_for(wallet.view(account), 5)
        assert (view.balance, view.held, view.charges) == (1_000_000 - 123_456, 0, 123_456)
        assert settle.done()
    finally:
        await scripts.aclose()
        await redis.aclose()


async def test_the_settle_of_a_request_alone_does_not_linger(
    aiohttp_server: Any,
    upstream: FakeUpstream,
    redis_server: RedisServer,
    tmp_path: Any,
    counter: TokenCounter,
) -> None:
    """With no other request under way nothing would come to take it along: the settle goes
    at once, done before the client's next request is admitted (Redis runs it first)."""
    redis = aioredis.Redis.from_url(redis_server.url)
    scripts = FastScripts(redis_server.url, all_sources(), timeout=120.0, linger=30.0)
    app = create_app(make_settings(upstream.base_url, tmp_path), redis=redis,
                     admin_token_sha256=ADMIN_SHA, registry=CollectorRegistry(),
                     pricing=parse_pricing(PRICING, source="t"), counter=counter,
                     scripts=scripts)  # fmt: skip
    server = await aiohttp_server(app)
    try:
        async with aiohttp.ClientSession() as http:
            gw = Gateway(url=f"http://127.0.0.1:{server.port}", http=http,
                         registry=CollectorRegistry(), app=app)  # fmt: skip
            account, key = await gw.account(topup="1.00")
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            async with http.post(gw.url + "/v1/chat/completions", json=body,
                                 headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
                assert r.status == 200
            charges = None
            for _ in range(100):  # straight from Redis: no wallet read to hurry it
                charges = await redis.hget(AccountKeys(account).wallet, "charges")
                if charges is not None:
                    break
                await asyncio.sleep(0.02)
            assert charges is not None and int(charges) > 0, "the settle lingered"
            assert (await gw.wallet(account))["held"] == "0.00"
    finally:
        await scripts.aclose()
        await redis.aclose()
