"""A call nobody waits on (a settle whose answer went out) lingers, to share a write with the
next call: it leaves with the next urgent call, by itself after the linger time, or at once
when a read of the wallet needs it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.accounts import Directory
from gateway.fastredis import FastScripts
from gateway.scripts import all_sources
from gateway.wallet import Admission, Limits, Wallet
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
