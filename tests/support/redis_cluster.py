"""A local 3-master Redis Cluster on loopback, for the tests that must hold on a cluster."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.redis_server import free_port, pick_binary, wait_for_ping


class RedisClusterServers:
    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.binary = pick_binary()
        cli = shutil.which("redis-cli") or str(Path(self.binary).with_name("redis-cli"))
        self.cli = cli
        self.workdir = workdir
        self.ports = [cluster_port() for _ in range(masters)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for port in self.ports:
            self.processes.append(subprocess.Popen(
                [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--cluster-enabled", "yes",
                 "--cluster-config-file", f"nodes-{port}.conf", "--dir", str(self.workdir)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        for port in self.ports:
            wait_for_ping(port)
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run([self.cli, "--cluster", "create", *nodes, "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = subprocess.run([self.cli, "-p", str(self.ports[0]), "cluster", "info"],
                                  capture_output=True, text=True, timeout=10).stdout  # fmt: skip
            if "cluster_state:ok" in info:
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not become ready")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is valid and free too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def cluster_available() -> bool:
    cli = shutil.which("redis-cli") or str(Path(pick_binary()).with_name("redis-cli"))
    return Path(cli).exists()
