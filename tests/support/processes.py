"""Gateways as separate OS processes (``python -m gateway serve``) sharing one Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import yaml

from tests.support.redis_server import free_port

ADMIN_TOKEN = "test-admin-token"


class GatewayProcess:
    def __init__(self, config: Path, redis_url: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TOLLGATE_REDIS_URL": redis_url, "TOLLGATE_ADMIN_TOKEN": ADMIN_TOKEN}
        self.log = config.with_suffix(f".{self.port}.log")
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port",
             str(self.port)],
            stdout=self._log_file, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

    async def wait_ready(self, seconds: float = 20.0) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(int(seconds / 0.05)):
                if self.proc.poll() is not None:
                    raise AssertionError(f"gateway exited: {self.log.read_text()}")
                try:
                    async with http.get(self.url + "/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"gateway not ready: {self.log.read_text()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._log_file.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


def write_config(tmp_path: Path, upstream_url: str, pricing: str, **extra: object) -> Path:
    (tmp_path / "pricing.yaml").write_text(pricing)
    config = {
        "data_dir": str(tmp_path / "data"),
        "pricing_file": "pricing.yaml",
        "providers": [
            {"name": "mock", "kind": "mock", "models": ["mock-*"]},
            {"name": "openai", "kind": "openai", "base_url": upstream_url,
             "api_key": "sk-upstream-secret", "models": ["gpt-*", "text-embedding-*"]},
        ],
        **extra,
    }  # fmt: skip
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
