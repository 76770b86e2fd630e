"""No charge lost: settles that meet a Redis which is loading, gone, or stalled land once, later.

Real Redis servers (restarted on the same AOF, or frozen with SIGSTOP), a real upstream, the
gateway in process and as OS processes killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from gateway.apis.tokens import TokenCounter
from gateway.app import create_app
from gateway.billing.lua_scripts import all_sources
from gateway.store.clients import make_redis
from gateway.store.fast_client import FastScripts
from gateway.store.keys import AccountKeys
from pricing import parse_pricing
from tests.integration.conftest import ADMIN_SHA, PRICING, Gateway, make_settings, remote
from tests.support.fake_upstream import FakeUpstream
from tests.support.ledger import assert_ledger_identity
from tests.support.processes import GatewayProcess, write_config
from tests.support.redis_server import RedisServer, wait_for_ping

REDIS_7 = "v=7."


def own_redis_version(server: RedisServer) -> str:
    return subprocess.run([server.binary, "--version"], capture_output=True, text=True).stdout


BODY = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]}  # $0.002 each


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A Redis of this test's own, with AOF, that the test may stop, restart or freeze."""
    server = RedisServer(tmp_path / "redis", aof=True)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGCONT)
    server.stop()


async def in_process(
    aiohttp_server: Any, upstream: FakeUpstream, tmp_path: Path, counter: TokenCounter,
    redis: Any, scripts: FastScripts, **overrides: Any,
) -> Gateway:  # fmt: skip
    settings = make_settings(upstream.base_url, tmp_path, **overrides)  # type: ignore[attr-defined]
    app = create_app(settings, redis=redis, admin_token_sha256=ADMIN_SHA,
                     registry=CollectorRegistry(), pricing=parse_pricing(PRICING, source="t"),
                     counter=counter, scripts=scripts)  # fmt: skip
    server = await aiohttp_server(app)
    return Gateway(url=f"http://127.0.0.1:{server.port}", http=aiohttp.ClientSession(),
                   registry=CollectorRegistry(), app=server)  # fmt: skip


async def shut(gw: Gateway, scripts: FastScripts, client: Any) -> None:
    """Stop the app (its cleanup still uses Redis), then the clients it used."""
    await gw.close()
    await gw.app.close()
    await scripts.aclose()
    await client.aclose()


async def charged_ids(redis: Any, account: str) -> list[str]:
    ledger = await redis.xrange(AccountKeys(account).ledger)
    return [f["r"] for _, f in ledger if f["t"] == "charge" and f["a"] != "0"]


async def wait_until(check: Any, seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def post_all(gw: Gateway, key: str, n: int) -> list[tuple[int, str, str]]:
    """n concurrent requests: (status, request id, X-Usage-Cost) each."""

    async def one() -> tuple[int, str, str]:
        async with gw.http.post(gw.url + "/v1/chat/completions", json=BODY,
                                headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
            await r.read()
            return r.status, r.headers.get("X-Request-Id", ""), r.headers.get("X-Usage-Cost", "")

    return await asyncio.gather(*(one() for _ in range(n)))


async def test_settles_meeting_loading_redis_land_once(
    aiohttp_server: Any, upstream: FakeUpstream, tmp_path: Path, counter: TokenCounter,
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    if REDIS_7 not in own_redis_version(own_redis):
        pytest.skip("key-load-delay needs redis-server 7")
    client = make_redis(own_redis.url)
    scripts = FastScripts(own_redis.url, all_sources(), timeout=1.0)
    gw = await in_process(aiohttp_server, upstream, tmp_path, counter, client, scripts)
    try:
        account, key = await gw.account(topup="1.00")
        # Enough data that a restart spends seconds loading it (answering -LOADING meanwhile).
        async with client.pipeline(transaction=False) as pipe:
            for i in range(40_000):
                pipe.set(f"filler:{i}", "x")
            await pipe.execute()
        await client.bgrewriteaof()
        await wait_until(lambda: _rewrite_done(client))

        upstream.delay = 0.6  # admitted, then waiting on the upstream when Redis restarts
        caplog.set_level(logging.WARNING, "gateway.edge.proxy")
        requests = asyncio.ensure_future(post_all(gw, key, 10))
        await asyncio.sleep(0.3)
        own_redis.stop()
        # ~2 s of loading, answering -LOADING to commands meanwhile.
        own_redis.start("--key-load-delay", "50", "--loading-process-events-interval-bytes",
                        "1024", wait=False)  # fmt: skip
        answers = await requests
        assert {status for status, _, _ in answers} == {200}
        assert {cost for _, _, cost in answers} == {"0.002"}
        wait_for_ping(own_redis.port, seconds=30)

        async def all_charged() -> bool:
            return len(await charged_ids(client, account)) == 10

        await wait_until(all_charged)
        # The journaled settles did meet the loading Redis (and were kept for it).
        assert any("LOADING" in r.getMessage() for r in caplog.records)
        ids = await charged_ids(client, account)
        assert sorted(ids) == sorted(rid for _, rid, _ in answers)  # each once
        wallet = await gw.wallet(account)
        assert (wallet["balance"], wallet["held"]) == ("0.98", "0.00")
        assert await assert_ledger_identity(client) == 1
    finally:
        await shut(gw, scripts, client)


async def _rewrite_done(client: Any) -> bool:
    info = await client.info("persistence")
    return not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]


class Lives:
    """A gateway process on ``config``, to be killed with SIGKILL, then the one that starts
    after it on the same data directory (and adopts its journal)."""

    def __init__(self, config: Path, redis_url: str) -> None:
        self.config, self.redis_url = config, redis_url
        self.first = GatewayProcess(config, redis_url)
        self.second: GatewayProcess | None = None

    async def restart(self) -> GatewayProcess:
        self.second = GatewayProcess(self.config, self.redis_url)
        await self.second.wait_ready()
        return self.second

    def end(self) -> None:
        self.first.kill()
        if self.second is not None:
            self.second.stop()


async def test_gateway_killed_during_an_outage_charges_every_answer_after_restart(
    upstream: FakeUpstream, tmp_path: Path, own_redis: RedisServer
) -> None:
    config = write_config(tmp_path, upstream.base_url, PRICING)  # type: ignore[attr-defined]
    lives = Lives(config, own_redis.url)
    first = lives.first
    client = make_redis(own_redis.url)
    try:
        await first.wait_ready()
        async with aiohttp.ClientSession() as http:
            gw = remote(first, http)
            account, key = await gw.account(topup="1.00")
            upstream.delay = 0.8
            requests = asyncio.ensure_future(post_all(gw, key, 8))
            await asyncio.sleep(0.3)
            own_redis.stop()  # the settles of all 8 will fail
            answers = await requests
            assert {status for status, _, _ in answers} == {200}
            first.kill()  # SIGKILL: no shutdown, no drain; the journal is all that is left
            own_redis.start()  # same AOF: the admissions and their holds are there
            assert await charged_ids(client, account) == []
            assert (await client.hget(AccountKeys(account).wallet, "held")) not in (None, "0")

            second = await lives.restart()

            async def all_charged() -> bool:
                return len(await charged_ids(client, account)) == 8

            await wait_until(all_charged)
            ids = await charged_ids(client, account)
            assert sorted(ids) == sorted(rid for _, rid, _ in answers)
            wallet = await remote(second, http).wallet(account)
            assert (wallet["balance"], wallet["held"]) == ("0.984", "0.00")
            # The dead process's journal was adopted (and removed) by the one that restarted.
            assert not list((tmp_path / "data" / "journal").glob(f"settles-{first.proc.pid}-*"))
            assert await assert_ledger_identity(client) == 1
    finally:
        lives.end()
        await client.aclose()


async def test_a_stalled_admission_leaves_no_hold_behind(
    aiohttp_server: Any, upstream: FakeUpstream, tmp_path: Path, counter: TokenCounter,
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    client = make_redis(own_redis.url)
    scripts = FastScripts(own_redis.url, all_sources(), timeout=0.5)
    gw = await in_process(aiohttp_server, upstream, tmp_path, counter, client, scripts,
                          hold_ttl=300.0)  # fmt: skip
    try:
        # After the first request, enough for one more request's hold ($0.002), and no more.
        account, key = await gw.account(topup="0.005")
        ((status, _, _),) = await post_all(gw, key, 1)  # the key is cached from here on
        assert status == 200
        await gw.wallet(account)
        assert own_redis.process is not None
        caplog.set_level(logging.WARNING, "gateway.app")
        own_redis.process.send_signal(signal.SIGSTOP)  # the admission gets no reply
        ((status, _, _),) = await post_all(gw, key, 1)
        assert status == 503
        # It was the admission that timed out (the lean client's watchdog), not a key lookup.
        assert any("did not answer in time" in r.getMessage() for r in caplog.records)
        own_redis.process.send_signal(signal.SIGCONT)  # then a fast Redis again
        wk = AccountKeys(account).wallet

        async def nothing_held() -> bool:
            return (await client.hget(wk, "held")) in (None, "0")

        await wait_until(nothing_held, seconds=10)  # not after hold_ttl (300 s)
        await asyncio.sleep(1.0)  # an admission arriving late still places nothing
        assert await nothing_held()
        await asyncio.sleep(0.6)  # the breaker's cooldown
        ((status, _, cost),) = await post_all(gw, key, 1)
        assert (status, cost) == (200, "0.002")
        wallet = await gw.wallet(account)  # waits for this process's settles
        assert (wallet["balance"], wallet["held"]) == ("0.001", "0.00")  # two requests paid
        assert await assert_ledger_identity(client) == 1
    finally:
        await shut(gw, scripts, client)


async def test_a_gateway_killed_mid_stream_charges_what_it_relayed(
    upstream: FakeUpstream, tmp_path: Path, own_redis: RedisServer
) -> None:
    """The stream's progress is journaled as it goes: after a kill -9 in its middle, the
    process that adopts the journal charges what was relayed (partial), not nothing."""
    config = write_config(tmp_path, upstream.base_url, PRICING,  # type: ignore[attr-defined]
                          journal_stream_interval=0.2)  # fmt: skip
    lives = Lives(config, own_redis.url)
    first = lives.first
    client = make_redis(own_redis.url)
    try:
        await first.wait_ready()
        async with aiohttp.ClientSession() as http:
            gw = remote(first, http)
            account, key = await gw.account(topup="1.00")
            upstream.chunk_delay = 0.05  # a long stream
            body = {
                "model": "gpt-4o-mini",
                "stream": True,
                "max_tokens": 1000,
                "messages": [{"role": "user", "content": "write a long story " * 20}],
            }
            r = await http.post(gw.url + "/v1/chat/completions", json=body,
                                headers={"Authorization": f"Bearer {key}"})  # fmt: skip
            rid = r.headers["x-request-id"]
            received = 0
            while received < 30:  # about 1.5 s of it: several progress lines journaled
                line = await r.content.readline()
                assert line, "the stream ended before the kill"  # it echoes 80 words
                received += line.startswith(b"data: {")
            first.kill()
            r.close()
            assert await charged_ids(client, account) == []

            second = await lives.restart()

            async def charged() -> bool:
                return await charged_ids(client, account) == [rid]

            await wait_until(charged)
            ledger = [f for _, f in await client.xrange(AccountKeys(account).ledger)]
            (charge,) = [f for f in ledger if f["t"] == "charge"]
            status, source = charge["y"].split("|")[:2]
            assert (status, source) == ("settled", "partial")
            output_tokens = int(charge["u"].split(",")[1])
            assert output_tokens >= 20  # what it had relayed, roughly, not nothing
            wallet = await remote(second, http).wallet(account)
            assert wallet["held"] == "0.00"
            assert await assert_ledger_identity(client) == 1
    finally:
        lives.end()
        await client.aclose()
