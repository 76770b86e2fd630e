"""A Redis found through Sentinel (redis-py): the gateway meters against the master Sentinel
names, and follows it when Sentinel fails over to the replica."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiohttp

from gateway.store.clients import make_redis
from pricing import parse_usd
from tests.integration.conftest import PRICING, remote
from tests.support.fake_upstream import FakeUpstream
from tests.support.ledger import assert_ledger_identity
from tests.support.processes import GatewayProcess, write_config
from tests.support.redis_server import RedisServer, free_port, pick_binary, wait_for_ping


class SentinelServer:
    def __init__(self, workdir: Path, master_port: int) -> None:
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor svc 127.0.0.1 {master_port} 1\n"
            "sentinel down-after-milliseconds svc 1000\nsentinel failover-timeout svc 5000\n"
        )
        argv = [pick_binary(), str(self.conf), "--sentinel"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)  # fmt: skip
        wait_for_ping(self.port, process=self.process)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def test_metering_through_sentinel_survives_a_failover(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    master = RedisServer(tmp_path / "master", aof=True)
    master.start()
    replica = RedisServer(tmp_path / "replica", aof=True)
    replica.start("--replicaof", "127.0.0.1", str(master.port))
    sentinel = SentinelServer(tmp_path / "sentinel", master.port)
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/svc/0"
    proc: GatewayProcess | None = None
    client = make_redis(url)
    try:
        config = write_config(tmp_path, upstream.base_url, PRICING)  # type: ignore[attr-defined]
        proc = GatewayProcess(config, url)
        await proc.wait_ready()
        body = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as http:
            gw = remote(proc, http)
            account, key = await gw.account(topup="1.00")
            auth = {"Authorization": f"Bearer {key}"}

            async def call() -> int:
                async with http.post(gw.url + "/v1/chat/completions", json=body,
                                     headers=auth) as r:  # fmt: skip
                    await r.read()
                    return r.status

            assert await call() == 200
            sentinel_client = make_redis(f"redis://127.0.0.1:{sentinel.port}/0")
            await sentinel_client.execute_command("SENTINEL", "FAILOVER", "svc")
            await sentinel_client.aclose()
            old_replica = make_redis(replica.url)
            for _ in range(200):  # Sentinel promotes the replica
                if (await old_replica.execute_command("ROLE"))[0] == "master":
                    break
                await asyncio.sleep(0.05)
            assert (await old_replica.execute_command("ROLE"))[0] == "master"
            await old_replica.aclose()
            statuses = []
            for _ in range(200):  # the gateway finds the new master; 503s meanwhile, never free
                statuses.append(await call())
                if statuses[-1] == 200:
                    break
                await asyncio.sleep(0.05)
            assert statuses[-1] == 200 and set(statuses) <= {200, 503}, statuses
            wallet = await gw.wallet(account)
            paid = statuses.count(200) + 1
            assert wallet["held"] == "0.00"
            assert parse_usd(wallet["balance"]) == parse_usd("1.00") - paid * parse_usd("0.002")
            assert await assert_ledger_identity(client) == 1
    finally:
        if proc is not None:
            proc.stop()
        await client.aclose()
        sentinel.stop()
        replica.stop()
        master.stop()
