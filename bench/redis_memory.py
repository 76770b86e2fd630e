"""Bytes kept in Redis per metered request, and whether memory stays flat past retention.

    python -m bench.redis_memory [--requests 100000] [--accounts 100]

Runs the wallet's own scripts (admit_v5 + settle_v8 through the lean client, and the ledger
relay) against a fresh redis-server, with record fields shaped as the proxy writes them, and
reads ``used_memory`` (INFO) at each step:

1. after N requests, while each request's marker (``record_ttl``) still lives;
2. once the markers have expired: what a request costs for the rest of ``ledger_retention``
   (its ledger entry and its feed pointer);
3. a steady stream of requests with a short retention, for three retentions: memory should
   stop growing once the first retention has passed (entries are trimmed as new ones come).

Writes ``bench/results/redis_memory.md``. Issue 16's target: at most 400 bytes per request
over its retention, and flat memory once retention is reached.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import stack
from gateway.billing.accounts import Directory
from gateway.billing.feed import LedgerRelay
from gateway.billing.ledger import admission_field, outcome_field, usage_field
from gateway.billing.lua_scripts import all_sources
from gateway.billing.records import new_request_id
from gateway.billing.wallet import Limits, Wallet
from gateway.store.clients import make_redis
from gateway.store.fast_client import FastScripts
from pricing import Usage

RESULTS = Path(__file__).resolve().parent / "results" / "redis_memory.md"
USAGE = Usage(input_tokens=1234, output_tokens=321, cache_read_tokens=512, reasoning_tokens=64)


async def one_request(wallet: Wallet, account: str, key_id: str, *, record_ttl: int,
                      retention: int) -> None:  # fmt: skip
    rid = new_request_id()
    await wallet.admit(
        account, request_id=rid, key_id=key_id, hold=50_000, policy="strict", est_tokens=2000,
        limits=Limits(), hold_ttl_ms=300_000, record_ttl=record_ttl,
        record={"k": key_id, "p": "default", "m": "gpt-4o-mini",
                "x": admission_field("/chat/completions", True, "2026-12-01", None)},
    )  # fmt: skip
    await wallet.settle(
        account, request_id=rid, key_id=key_id, cost=12_345, tokens=USAGE.total_tokens,
        limits=Limits(), record_ttl=record_ttl, ledger_retention=retention,
        usage=usage_field(USAGE),
        outcome=outcome_field("settled", "upstream", 200, int(time.time() * 1000)),
    )  # fmt: skip


async def used_memory(redis: Any) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def expire_all(redis: Any) -> None:
    """Touch every key, so that Redis deletes the expired ones now rather than eventually."""
    async for _ in redis.scan_iter(count=1000):
        pass


async def run(requests: int, accounts: int, url: str) -> dict[str, Any]:
    redis = make_redis(url)
    scripts = FastScripts(url, all_sources())
    relay = LedgerRelay(redis, scripts, retention_s=86400)
    wallet = Wallet(redis, scripts, on_ledger=relay.touched)
    directory = Directory(redis)
    ids = []
    for n in range(accounts):
        account = (await directory.create_account({"name": f"a{n}", "plan": "pro"})).id
        key, _ = await directory.create_key(account, project="default", name="k", rpm=0, tpm=0)
        await wallet.move_money(account, kind="topup", amount=10**15, order_id="seed")
        ids.append((account, key.id))
    await relay.flush_dirty()
    await relay.run_once()
    base = await used_memory(redis)

    async def batch(start: int, count: int, record_ttl: int, retention: int) -> None:
        await asyncio.gather(*(
            one_request(wallet, *ids[i % accounts], record_ttl=record_ttl, retention=retention)
            for i in range(start, start + count)
        ))  # fmt: skip

    for start in range(0, requests, 500):
        await batch(start, min(500, requests - start), record_ttl=3, retention=86400)
        await relay.flush_dirty()
        await relay.run_once()
    with_markers = await used_memory(redis) - base
    await asyncio.sleep(4)
    await expire_all(redis)
    kept = await used_memory(redis) - base

    # Steady traffic with a 10 s retention, for 30 s: flat after the first 10 s?
    retention, series = 10, []
    relay.retention_ms = retention * 1000  # the feed's pointers are trimmed like the ledger
    started = time.monotonic()
    done = 0
    while time.monotonic() - started < 3 * retention:
        await batch(done, 200, record_ttl=1, retention=retention)
        done += 200
        await relay.flush_dirty()
        await relay.run_once()
        if int(time.monotonic() - started) > len(series):
            await expire_all(redis)
            series.append(await used_memory(redis) - base)
    await scripts.aclose()
    await redis.aclose()
    return {"requests": requests, "accounts": accounts, "with_markers": with_markers,
            "kept": kept, "series": series, "steady_requests": done}  # fmt: skip


def report(r: dict[str, Any]) -> str:
    n = r["requests"]
    series = r["series"]
    third = len(series) // 3
    second, last = series[third : 2 * third], series[2 * third :]
    lines = [
        "# Bytes per request kept in Redis (`python -m bench.redis_memory`)",
        "",
        f"{n:,} requests over {r['accounts']} accounts, through admit_v5 + settle_v8 and the "
        "ledger relay, record fields as the proxy writes them.",
        "",
        "| What | Bytes per request |",
        "| --- | ---: |",
        f"| While its marker lives (`record_ttl`): ledger entry + feed pointer + marker | "
        f"{r['with_markers'] / n:,.0f} |",
        f"| For the rest of `ledger_retention`: ledger entry + feed pointer | "
        f"{r['kept'] / n:,.0f} |",
        "",
        f"Steady traffic ({r['steady_requests']:,} requests in 30 s) with a 10 s retention and "
        "a 1 s marker: Redis memory above the start, once a second (MB):",
        "",
        " ".join(f"{v / 1e6:.2f}" for v in series),
        "",
        f"Second 10 s: {min(second) / 1e6:.2f}-{max(second) / 1e6:.2f} MB; last 10 s: "
        f"{min(last) / 1e6:.2f}-{max(last) / 1e6:.2f} MB (flat once retention is reached: "
        "entries older than it are trimmed as new ones are added).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tollgate-redis-memory-") as scratch:
        proc, url = stack.start_redis(Path(scratch), None)
        try:
            result = asyncio.run(run(args.requests, args.accounts, url))
        finally:
            proc.stop()
    text = report(result)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
