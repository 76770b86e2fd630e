"""Clients that stop reading: nobody else pays, the stream is billed for what was delivered,
and nothing (hold, upstream connection) is kept for longer than ``client_write_timeout``.

These run against ``tollgate serve`` processes: aiohttp's test server cancels a handler whose
client hangs up, the real server does not (the write fails instead), and the defects lived in
that difference."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pricing import parse_usd
from tests.integration.conftest import Gateway, remote
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import GatewayProcess
from tests.support.stalled_client import open_stalled

Spawn = Callable[..., Awaitable[GatewayProcess]]

pytestmark = pytest.mark.redis_cluster_too

BIG_STREAM = {"model": "gpt-4o-mini", "stream": True, "max_tokens": 500,
              "messages": [{"role": "user", "content": "tell me a long story " * 20}]}  # fmt: skip


async def settled(gw: Gateway, key: str, rid: str, seconds: float = 10.0) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for _ in range(int(seconds / 0.05)):
        rec = await gw.record(key, rid)
        if rec["status"] != "pending":
            return rec
        await asyncio.sleep(0.05)
    raise AssertionError(f"{rid} still pending: {rec}")


async def bystander_calls(gw: Gateway, key: str, n: int) -> list[int]:
    statuses = []
    for _ in range(n):
        async with gw.http.post(gw.url + "/v1/chat/completions",
                                json={"model": "gpt-flat", "messages": [
                                    {"role": "user", "content": "hi"}]},
                                headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
            await r.read()
            statuses.append(r.status)
        await asyncio.sleep(0.01)
    return statuses


async def full_cost(gw: Gateway, key: str) -> int:
    async with gw.http.post(gw.url + "/v1/chat/completions", json=BIG_STREAM,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        rid = r.headers["x-request-id"]
        await r.read()
    return parse_usd((await settled(gw, key, rid))["cost"])


async def metric(gw: Gateway, name: str, labels: dict[str, str] | None = None) -> float | None:
    async with gw.http.get(gw.url + "/metrics") as r:
        text = await r.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and (labels is None or sample.labels == labels):
                return float(sample.value)
    return None


async def test_a_client_that_stops_reading_then_hangs_up_hurts_nobody_and_pays_for_what_it_got(
    spawn: Spawn, upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    gw = remote(await spawn(), http)
    upstream.pad_events = 200_000  # ~14 MB a stream: far more than the sockets buffer
    _, bystander = await gw.account(topup="1.00")
    _, key = await gw.account(topup="1.00")
    whole = await full_cost(gw, key)

    clients = [await open_stalled(gw.url + "/v1/chat/completions", key, BIG_STREAM)
               for _ in range(5)]  # fmt: skip
    during = asyncio.create_task(bystander_calls(gw, bystander, 20))
    await asyncio.sleep(0.5)  # the gateway is now blocked writing to each of them
    for c in clients:
        c.close()
    assert await during == [200] * 20
    assert await bystander_calls(gw, bystander, 5) == [200] * 5
    for c in clients:
        rec = await settled(gw, key, c.request_id)
        assert rec["status"] == "settled" and rec["usage_source"] == "partial", rec
        assert 0 < parse_usd(rec["cost"]) < whole, (rec, whole)
    assert not await metric(gw, "tollgate_rejections_total",
                            {"reason": "billing_unavailable"})  # absent, or 0 from start


async def test_a_client_that_never_reads_is_cut_after_the_write_timeout(
    spawn: Spawn, upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    gw = remote(await spawn(client_write_timeout=1.0), http)
    upstream.pad_events = 200_000
    account, key = await gw.account(topup="1.00")
    client = await open_stalled(gw.url + "/v1/chat/completions", key, BIG_STREAM)
    try:
        rec = await settled(gw, key, client.request_id, seconds=8.0)
        assert rec["status"] == "settled" and rec["usage_source"] == "partial", rec
        wallet = await gw.wallet(account)
        assert wallet["held"] == "0.00", wallet
        await asyncio.wait_for(upstream.finished.wait(), 5.0)  # its upstream connection is gone
        assert await metric(gw, "tollgate_streams_cut_total") == 1
    finally:
        client.close()
