"""`tollgate serve` as an operator runs it: embedded persistent Redis, mock provider, no keys."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import openai
import pytest

from tests.support.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, body: str | None = None) -> Path:
    (tmp_path / "pricing.yaml").write_text((REPO / "config" / "pricing.yaml").read_text())
    config = tmp_path / "gateway.yaml"
    config.write_text(
        body
        if body is not None
        else (
            "data_dir: data\n"
            "pricing_file: pricing.yaml\n"
            "providers:\n"
            "  - {name: mock, kind: mock, models: ['mock-*']}\n"
        )
    )
    return config


class Server:
    def __init__(self, config: Path, port: int) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("TOLLGATE_REDIS_URL", "TOLLGATE_ADMIN_TOKEN")
        }
        self.port = port
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )

    async def wait_ready(self) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("gateway did not become ready")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=20)
        return out


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            # SIGTERM first: a gateway stops its embedded redis-server on the way out.
            s.proc.terminate()
            try:
                s.proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.communicate()


async def test_serve_embedded_redis_mock_provider_and_persistence(
    tmp_path: Path, servers: list[Server]
) -> None:
    config = write_config(tmp_path)
    port = free_port()
    first = Server(config, port)
    servers.append(first)
    await first.wait_ready()
    token = (tmp_path / "data" / "admin_token").read_text().strip()
    admin = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/admin/accounts", json={"name": "acme"}, headers=admin) as r:
            account = (await r.json())["id"]
        async with http.post(f"{base}/admin/accounts/{account}/keys", json={}, headers=admin) as r:
            key = (await r.json())["key"]
        async with http.post(
            f"{base}/admin/accounts/{account}/topups",
            headers=admin,
            json={"amount": "1.00", "order_id": "first"},
        ) as r:
            assert r.status == 201
    async with openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="mock-gpt", messages=[{"role": "user", "content": "hello"}]
        )
        assert raw.parse().choices[0].message.content
        balance = raw.headers["x-balance-remaining"]
    output = first.stop()
    assert first.proc.returncode == 0, output
    assert token in output  # printed once, on the first start
    assert "listening on" in output

    second = Server(config, port)  # same data dir: the embedded Redis reloads its AOF
    servers.append(second)
    await second.wait_ready()
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/v1/wallet", headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        assert (await r.json())["balance"] == balance
    output = second.stop()
    assert token not in output


def test_bad_config_fails_with_one_line_naming_file_and_field(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, "providers:\n  - {name: x, kind: carrier-pigeon, models: ['*']}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(config) in lines[0] and "providers[0].kind" in lines[0]


def test_bad_pricing_fails_with_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "pricing.yaml").write_text("models:\n  m: {input: -1}\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "models.m.input" in result.stderr
