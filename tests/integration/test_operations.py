"""Operating it: Prometheus text, pricing hot reload, workers, JSON logs, graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client import CollectorRegistry

from gateway.apis.tokens import TokenCounter
from gateway.app import create_app
from tests.integration.conftest import ADMIN_SHA, PRICING, Gateway, make_settings, remote
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import ADMIN_TOKEN, GatewayProcess, write_config
from tests.support.redis_server import free_port

Spawn = Callable[..., Awaitable[GatewayProcess]]


async def chat(gw: Gateway, key: str, model: str = "gpt-flat", **extra: Any) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": "secret prompt text"}],
            **extra}  # fmt: skip
    async with gw.http.post(gw.url + "/v1/chat/completions", json=body,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        return r.status, await r.read(), r.headers


async def test_metrics_pass_promtool(gateway: Gateway, upstream: FakeUpstream) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: scripts/test.sh installs Debian's prometheus")
        pytest.skip("promtool not installed")
    _, key = await gateway.account()
    await chat(gateway, key)
    await chat(gateway, key, model="nope")
    async with gateway.http.get(gateway.url + "/metrics") as r:
        text = await r.read()
    assert b'tollgate_requests_total{model="gpt-flat",provider="openai",status="200"} 1.0' in text
    assert b'tollgate_rejections_total{reason="model_not_priced"} 1.0' in text
    assert b'tollgate_pricing_info{version="test-1"} 1.0' in text
    for name in (b"tollgate_overhead_seconds_bucket", b"tollgate_redis_seconds_bucket",
                 b"tollgate_upstream_seconds_bucket", b"tollgate_holds_outstanding_usd",
                 b"tollgate_in_flight_requests", b"tollgate_cost_usd_total"):  # fmt: skip
        assert name in text
    await assert_promtool_clean(text)


async def assert_promtool_clean(text: bytes) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: scripts/test.sh installs Debian's prometheus")
        return
    result = await asyncio.to_thread(subprocess.run, [promtool, "check", "metrics"], input=text,
                                     capture_output=True, timeout=30)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == b"" and result.stderr.strip() == b""


async def test_pricing_file_edited_under_load(
    aiohttp_server: Any, redis: Any, upstream: FakeUpstream, tmp_path: Path, counter: TokenCounter
) -> None:
    pricing_file = tmp_path / "pricing.yaml"
    pricing_file.write_text(PRICING)
    settings = make_settings(upstream.base_url, tmp_path,  # type: ignore[attr-defined]
                             pricing_poll_interval=0.05)  # fmt: skip
    registry = CollectorRegistry()
    app = create_app(settings, redis=redis, admin_token_sha256=ADMIN_SHA, registry=registry,
                     counter=counter)  # fmt: skip
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as http:
        gw = Gateway(url=f"http://127.0.0.1:{server.port}", http=http, registry=registry, app=app)
        _, key = await gw.account(topup="100.00")
        costs: list[str] = []
        statuses: list[int] = []
        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                status, _, headers = await chat(gw, key)
                statuses.append(status)
                costs.append(headers.get("X-Usage-Cost", ""))

        workers = [asyncio.create_task(load()) for _ in range(4)]
        await asyncio.sleep(0.3)
        pricing_file.write_text(PRICING.replace("per_request: 0.002", "per_request: 0.005")
                                .replace("version: test-1", "version: test-2"))  # fmt: skip
        for _ in range(100):
            if costs and costs[-1] == "0.005":
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        # A broken edit is not applied: the old table stays and the failure is counted.
        pricing_file.write_text("models:\n  gpt-flat: {per_request: -1}\n")
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*workers)
    assert set(statuses) == {200}
    assert costs[0] == "0.002" and costs[-1] == "0.005"
    assert set(costs) == {"0.002", "0.005"}
    assert registry.get_sample_value("tollgate_pricing_reloads_total", {"result": "error"}) == 1
    assert registry.get_sample_value("tollgate_pricing_last_reload_ok") == 0
    assert registry.get_sample_value("tollgate_pricing_info", {"version": "test-2"}) == 1


async def test_two_workers_share_the_port_and_the_metrics(
    redis_server: Any, redis: Any, upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = write_config(tmp_path, upstream.base_url, PRICING,  # type: ignore[attr-defined]
                          log_format="json")  # fmt: skip
    port = free_port()
    env = {**os.environ, "TOLLGATE_REDIS_URL": redis_server.url,
           "TOLLGATE_ADMIN_TOKEN": ADMIN_TOKEN}  # fmt: skip
    log = (tmp_path / "serve.log").open("w")
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port",
            str(port), "--workers", "2"]  # fmt: skip
    proc = await asyncio.to_thread(subprocess.Popen, argv, stdout=log, stderr=subprocess.STDOUT,
                                   env=env)  # fmt: skip
    try:
        fake = GatewayProcess.__new__(GatewayProcess)
        fake.port, fake.url, fake.proc, fake.log = port, f"http://127.0.0.1:{port}", proc, \
            tmp_path / "serve.log"  # fmt: skip
        await fake.wait_ready()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            gw = remote(fake, http)
            _, key = await gw.account()
            sent = 0
            for _ in range(40):  # until both workers have served (the second may start later)
                results = await asyncio.gather(*(chat(gw, key) for _ in range(20)))
                assert {s for s, _, _ in results} == {200}
                sent += 20
                if len(served_by(tmp_path / "serve.log")) == 2:
                    break
                await asyncio.sleep(0.2)  # a loaded box can take seconds to start a worker
            # A worker shows the others' figures as of their last snapshot (every 1 s): poll
            # until the total shows, then every read from any worker must show it.
            deadline = asyncio.get_running_loop().time() + 5
            while (total := await requests_total(http, gw.url)) != sent:
                assert asyncio.get_running_loop().time() < deadline, (total, sent)
                await asyncio.sleep(0.1)
            for _ in range(20):
                assert await requests_total(http, gw.url) == sent  # from any worker
            await assert_promtool_clean(await metrics_text(http, gw.url))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    lines = [orjson.loads(x) for x in (tmp_path / "serve.log").read_text().splitlines()
             if x.startswith("{")]  # fmt: skip
    requests = [x for x in lines if x.get("logger") == "tollgate.request"]
    assert len(requests) == sent
    assert {r["cost"] for r in requests} == {"0.002"}
    assert len({r["pid"] for r in requests}) == 2  # both workers served
    first = requests[0]
    for field in ("request_id", "account", "model", "status", "input_tokens", "output_tokens",
                  "latency_ms", "overhead_ms"):  # fmt: skip
        assert field in first
    text = (tmp_path / "serve.log").read_text()
    assert "secret prompt text" not in text and "sk-upstream-secret" not in text
    assert ADMIN_TOKEN not in text


async def metrics_text(http: aiohttp.ClientSession, url: str) -> bytes:
    async with http.get(url + "/metrics") as r:
        assert r.status == 200
        return await r.read()


async def requests_total(http: aiohttp.ClientSession, url: str) -> float:
    text = (await metrics_text(http, url)).decode()
    return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines()
               if x.startswith("tollgate_requests_total{"))  # fmt: skip


def served_by(log: Path) -> set[int]:
    pids = set()
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"tollgate.request"' in line:
            pids.add(orjson.loads(line)["pid"])
    return pids


async def test_sigterm_lets_a_stream_in_flight_finish(
    spawn: Spawn, redis: Any, upstream: FakeUpstream
) -> None:
    proc = await spawn(shutdown_timeout=10)
    upstream.gate = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        gw = remote(proc, http)
        _, key = await gw.account(topup="1.00")
        r = await http.post(gw.url + "/v1/chat/completions",
                            json={"model": "gpt-4o-mini", "stream": True, "max_tokens": 50,
                                  "messages": [{"role": "user", "content": "hi"}]},
                            headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        await r.content.readuntil(b"\n\n")
        proc.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        assert proc.proc.poll() is None  # still serving the stream
        upstream.gate.set()
        rest = await r.read()
        assert rest.endswith(b"data: [DONE]\n\n") and b": x-usage-cost " in rest
        r.close()
    assert await asyncio.to_thread(proc.proc.wait, 20) == 0


async def test_first_byte_timeout(make_gateway: Any, upstream: FakeUpstream) -> None:
    gateway = await make_gateway(first_byte_timeout=0.2)
    account, key = await gateway.account()
    upstream.delay = 1.0
    status, body, _ = await chat(gateway, key)
    assert status == 504 and b"upstream_timeout" in body
    assert (await gateway.wallet(account))["balance"] == "10.00"
