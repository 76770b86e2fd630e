"""Start and stop the pieces of the bench: Redis, the upstream, the pass-through, Tollgate.

Every process is started in its own session, pinned with ``taskset``, logged to a file in the
run's scratch directory, and stopped by its own process group id.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "bench-admin-token"
MODEL = "gpt-bench"
PRICING = f"""\
version: bench-1
models:
  {MODEL}: {{input: 0.15, output: 0.60, cache_read: 0.075, max_output_tokens: 256}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def export_source(rev: str, into: Path) -> str:
    """Extract ``gateway/`` and ``pricing/`` as committed at ``rev`` into ``into``; returns
    the full commit id. The repository is only read (``git archive``)."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", rev + "^{commit}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "gateway", "pricing"],
        capture_output=True, check=True,
    )  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return commit


def source_fingerprint(src: Path) -> str:
    """A hash of the gateway's source files as they are on disk now."""
    digest = hashlib.sha256()
    for path in sorted([*src.glob("gateway/**/*"), *src.glob("pricing/**/*")]):
        if path.is_file() and path.suffix in (".py", ".lua"):
            digest.update(str(path.relative_to(src)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def python_env(src: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a Python process run from ``src``: with an exported source tree,
    ``bench`` still comes from this checkout (``src``, the working directory, wins for
    ``gateway`` and ``pricing``)."""
    env = dict(os.environ)
    if src != ROOT:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    cwd: Path = ROOT
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped (with children) by id
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        pgid = self.popen.pid  # start_new_session: the group id is the leader's pid
        try:
            os.killpg(pgid, signal.SIGTERM)  # aiohttp's run_app and Redis exit cleanly on it
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.popen.wait(5)
        except ProcessLookupError:
            pass

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def pinned(cpus: str | None, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus else argv


def wait_http(url: str, proc: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready at {url} after {timeout}s:\n{proc.tail()}")


def wait_port(port: int, proc: Proc, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} not listening on {port} after {timeout}s")


def start_redis(scratch: Path, cpus: str | None) -> tuple[Proc, str]:
    port = free_port()
    argv = pinned(
        cpus,
        [
            "redis-server",
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(scratch),
        ],
    )  # fmt: skip
    proc = Proc("redis", argv, scratch / "redis.log").start()
    wait_port(port, proc)
    return proc, f"redis://127.0.0.1:{port}/0"


def start_upstream(
    scratch: Path, cpus: str | None, latency_ms: float, src: Path = ROOT
) -> tuple[Proc, str]:
    port = free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
    argv += ["--latency-ms", str(latency_ms)]
    log = scratch / "upstream.log"
    proc = Proc("upstream", pinned(cpus, argv), log, env=python_env(src), cwd=src).start()
    origin = f"http://127.0.0.1:{port}"
    wait_http(origin + "/healthz", proc)
    return proc, origin


def start_passthrough(
    scratch: Path, cpus: str | None, upstream: str, src: Path = ROOT
) -> tuple[Proc, str]:
    port = free_port()
    argv = [sys.executable, "-m", "bench.passthrough", "--port", str(port)]
    argv += ["--upstream", upstream]
    log = scratch / "passthrough.log"
    proc = Proc("passthrough", pinned(cpus, argv), log, env=python_env(src), cwd=src).start()
    wait_port(port, proc)
    return proc, f"http://127.0.0.1:{port}"


def write_gateway_config(
    scratch: Path, upstream: str, *, pricing: str = PRICING, extra: str = ""
) -> Path:
    """The gateway's config (and its pricing file) in ``scratch``; ``extra``: more top-level
    YAML lines."""
    (scratch / "pricing.yaml").write_text(pricing)
    config = scratch / "gateway.yaml"
    config.write_text(
        f"""\
redis_url: null            # TOLLGATE_REDIS_URL points at the bench's Redis
data_dir: {scratch / "data"}
pricing_file: pricing.yaml
{extra}providers:
  - name: bench
    kind: openai
    base_url: {upstream}/v1
    api_key: sk-bench-upstream
    models: ["gpt-*"]
"""
    )
    return config


def start_gateway(
    scratch: Path,
    cpus: str | None,
    config: Path,
    redis_url: str,
    workers: int,
    src: Path = ROOT,
) -> tuple[Proc, str]:
    port = free_port()
    env = python_env(
        src,
        {
            "TOLLGATE_REDIS_URL": redis_url,
            "TOLLGATE_ADMIN_TOKEN": ADMIN_TOKEN,
            "TOLLGATE_LOG_LEVEL": "WARNING",
        },
    )
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(config)]
    argv += ["--port", str(port), "--workers", str(workers)]
    log = scratch / f"gateway-{workers}w.log"
    name = f"tollgate ({workers} worker(s))"
    proc = Proc(name, pinned(cpus, argv), log, env=env, cwd=src).start()
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/readyz", proc, timeout=60)
    if workers > 1:
        deadline = time.monotonic() + 60
        while len(worker_pids(proc.pid)) < workers:
            if time.monotonic() > deadline or not proc.alive():
                raise RuntimeError(f"{proc.name}: workers did not all start:\n{proc.tail()}")
            time.sleep(0.2)
        time.sleep(1.0)  # let the last worker finish its start-up (tiktoken, Redis scripts)
    return proc, url


def admin(url: str, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    req = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def provision(url: str, topup: str, grants: int = 0) -> tuple[str, str]:
    """An account with one unlimited key, a big top-up and ``grants`` big credit grants (with
    priorities and ends, so every charge drains the first grant in the order and the wallet
    has all its kinds of money); returns (account id, key)."""
    status, acct = admin(url, "POST", "/admin/accounts", {"name": "bench", "plan": "default"})
    if status != 201:
        raise RuntimeError(f"create account: {status} {acct}")
    status, key = admin(
        url, "POST", f"/admin/accounts/{acct['id']}/keys", {"project": "bench", "name": "wrk"}
    )
    if status != 201:
        raise RuntimeError(f"create key: {status} {key}")
    order = f"bench-{acct['id']}"
    status, txn = admin(
        url, "POST", f"/admin/accounts/{acct['id']}/topups", {"amount": topup, "order_id": order}
    )
    if status != 201:
        raise RuntimeError(f"top-up: {status} {txn}")
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30 * 86400))
    for n in range(grants):
        terms = {"amount": topup, "order_id": f"{order}-g{n}", "priority": n % 3,
                 "expires_at": ends if n % 2 else None}  # fmt: skip
        status, txn = admin(url, "POST", f"/admin/accounts/{acct['id']}/credits", terms)
        if status != 201:
            raise RuntimeError(f"credit grant: {status} {txn}")
    return acct["id"], key["key"]


def wallet(url: str, account_id: str) -> dict[str, str]:
    req = urllib.request.Request(
        f"{url}/admin/accounts/{account_id}/wallet",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        body: dict[str, str] = json.loads(r.read())
        return body


def metered_requests(url: str) -> int:
    """Sum of ``tollgate_requests_total`` over all labels, from one worker's /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("tollgate_requests_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in task.read_text().split()]
        except OSError:
            continue
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def worker_pids(pid: int) -> list[int]:
    """The gateway's serving processes: itself with one worker, its spawned children else."""
    return [c for c in children(pid) if "spawn_main" in cmdline(c)]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None
