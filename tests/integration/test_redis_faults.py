"""Redis goes away under load: fast 503s, /readyz red, then recovery by itself, books intact."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from gateway.apis.tokens import TokenCounter
from gateway.app import create_app
from gateway.billing.lua_scripts import all_sources
from gateway.store.clients import make_redis
from gateway.store.fast_client import FastScripts
from gateway.store.keys import AccountKeys
from pricing import parse_pricing
from tests.integration.conftest import ADMIN_SHA, PRICING, Gateway, make_settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.ledger import assert_ledger_identity
from tests.support.redis_server import RedisServer


async def test_redis_restart_under_load(
    aiohttp_server: Any, upstream: FakeUpstream, tmp_path: Path, counter: TokenCounter
) -> None:
    server = RedisServer(tmp_path / "redis", aof=True)
    server.start()
    client = make_redis(server.url)
    scripts = FastScripts(server.url, all_sources(), timeout=1.0)
    try:
        settings = make_settings(upstream.base_url, tmp_path)  # type: ignore[attr-defined]
        app = create_app(settings, redis=client, admin_token_sha256=ADMIN_SHA,
                         registry=CollectorRegistry(),
                         pricing=parse_pricing(PRICING, source="t"), counter=counter,
                         scripts=scripts)  # fmt: skip
        web_server = await aiohttp_server(app)
        async with aiohttp.ClientSession() as http:
            gw = Gateway(url=f"http://127.0.0.1:{web_server.port}", http=http,
                         registry=CollectorRegistry(), app=app)  # fmt: skip
            account, key = await gw.account(topup="1.00")
            headers = {"Authorization": f"Bearer {key}"}
            body = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]}

            async def call() -> tuple[int, float]:
                t0 = time.perf_counter()
                async with http.post(gw.url + "/v1/chat/completions", json=body,
                                     headers=headers) as r:  # fmt: skip
                    await r.read()
                    return r.status, time.perf_counter() - t0

            assert (await call())[0] == 200
            server.stop()
            outage = [await call() for _ in range(20)]
            outage += await asyncio.gather(*(call() for _ in range(20)))
            assert {s for s, _ in outage} == {503}
            slowest = max(t for _, t in outage[:20])
            assert slowest < 0.1, f"a 503 took {slowest * 1000:.0f} ms"
            async with http.get(gw.url + "/readyz") as r:
                assert r.status == 503
            async with http.get(gw.url + "/healthz") as r:
                assert r.status == 200
            requests_before = len(upstream.requests)

            server.start()  # same port, same AOF
            statuses = []
            for _ in range(60):
                statuses.append((await call())[0])
                if statuses[-1] == 200:
                    break
                await asyncio.sleep(0.05)
            assert statuses[-1] == 200, statuses
            ok = [await call() for _ in range(5)]
            assert {s for s, _ in ok} == {200}
            async with http.get(gw.url + "/readyz") as r:
                assert r.status == 200
            # Nothing went upstream while billing was down; the books add up exactly.
            assert len(upstream.requests) == requests_before + 1 + 5
            # The settle that met the outage waits in the journal, replayed with a backoff of
            # up to 5 s: its hold goes once the replay runs, not when Redis comes back.
            for _ in range(200):
                wallet = await gw.wallet(account)
                if wallet["held"] == "0.00":
                    break
                await asyncio.sleep(0.05)
            assert wallet["balance"] == "0.986"  # 1.00 - 7 requests x 0.002
            assert wallet["held"] == "0.00"
            assert await assert_ledger_identity(client) == 1
    finally:
        if "web_server" in locals():
            await web_server.close()  # the app's cleanup still uses Redis
        await scripts.aclose()
        await client.aclose()
        server.stop()


async def test_a_command_redis_refuses_fails_alone_and_leaves_the_breaker_shut(
    gateway: Any, redis: Any
) -> None:
    """A refusal of one command (a check that let bad arguments through) is that request's
    500; Redis itself is fine, so nobody else may be refused (two such holes were found by
    schemathesis: each opened the breaker for every account on the worker)."""
    account, key = await gateway.account()
    ledger_key = AccountKeys(account).ledger
    await redis.rename(ledger_key, ledger_key + ":saved")  # the same hash tag
    await redis.set(ledger_key, "not a stream")  # XRANGE on it: WRONGTYPE, refused for good
    async with gateway.http.get(f"{gateway.url}/v1/requests/req_{'0' * 31}",
                                headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        assert r.status == 500, await r.text()
        assert (await r.json())["error"]["code"] == "internal_error"
    await redis.delete(ledger_key)
    await redis.rename(ledger_key + ":saved", ledger_key)
    wallet = await gateway.wallet(account)  # served at once: the breaker did not open
    assert wallet["balance"] == "10.00"
