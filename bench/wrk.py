"""Closed-loop load with ``wrk`` (compiled, one thread, pinned to its own core)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "post.lua"


@dataclass(frozen=True, slots=True)
class WrkResult:
    connections: int
    seconds: float
    requests: int
    bytes: int  # read from the server, whole answers and those cut off by the end of the run
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    non_2xx: int  # wrk's "Non-2xx or 3xx responses"
    socket_errors: int  # connect + read + write + timeout
    cpu_seconds: float  # wrk's own CPU time (user + system) during the run

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def run_wrk(
    url: str,
    *,
    body: bytes,
    key: str | None,
    connections: int,
    seconds: float,
    cpus: str | None,
    extra_headers: dict[str, str] | None = None,
) -> WrkResult:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    argv += ["-s", str(LUA)]
    for name, value in (extra_headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    env = {**os.environ, "BENCH_BODY": body.decode(), "BENCH_KEY": key or ""}
    before = _children_cpu()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    used = _children_cpu() - before  # taskset execs wrk: the child waited for is wrk itself
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    secs = raw["duration_us"] / 1e6
    return WrkResult(
        connections=connections,
        seconds=round(secs, 3),
        requests=raw["requests"],
        bytes=raw["bytes"],
        rps=raw["requests"] / secs,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        p999_ms=raw["p999_us"] / 1000,
        mean_ms=raw["lat_mean_us"] / 1000,
        max_ms=raw["lat_max_us"] / 1000,
        non_2xx=raw["non_2xx_3xx"],
        socket_errors=raw["connect_errors"]
        + raw["read_errors"]
        + raw["write_errors"]
        + raw["timeouts"],
        cpu_seconds=round(used, 4),
    )


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
