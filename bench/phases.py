"""The bench's measuring phases: one ``Bench`` runs every figure against one target.

``bench.run`` starts the processes and calls these; see its docstring for the cases.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from bench import cpu, loadgen, profile, stack
from bench.wrk import WrkResult, run_wrk

RESULTS = Path(__file__).resolve().parent / "results"
NOISY = 0.15  # cores used by other processes above which a phase is run again
T = TypeVar("T")
PROMPT = "Say hello to the benchmark, in one short sentence please."
BODY = orjson.dumps(
    {"model": stack.MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 64}
)
# The streams are up to 2,000 one-token chunks (bench.relay), and a provider sends no more
# tokens than max_tokens: below that, every stream's usage would exceed its hold, and the
# gateway would take its path for an upstream that overran the limit (the answer waits for
# Redis to confirm the charge) instead of the usual one
# (see gateway.billing.settler.Settler._certain).
STREAM_BODY = orjson.dumps({**orjson.loads(BODY), "max_tokens": 4096, "stream": True})
PATH = "/v1/chat/completions"


# What a checked stream can get wrong, as ``Bench.check`` names its two counts.
STREAM_FAULTS = ("streams bad (status, events or [DONE])", "without the cost comment")


class BenchFailure(RuntimeError):
    """A run was invalid (errors answered, a process died): the figures cannot be trusted."""


@dataclass(frozen=True)
class Plan:
    warmup: float
    throughput: float
    latency: float
    rate: float
    ttfc: float
    relay: float  # seconds per relay trial
    relay_rounds: int  # interleaved rounds of relay trials (bench.relay)
    soak: int  # metered requests per soak step (two steps); 0: no soak
    profile: int  # seconds of py-spy; 0: no profile


FULL = Plan(
    warmup=2, throughput=10, latency=6, rate=6, ttfc=3, relay=2, relay_rounds=7, soak=0, profile=10
)
QUICK = Plan(
    warmup=1, throughput=3, latency=3, rate=3, ttfc=1.5, relay=1, relay_rounds=3, soak=0, profile=0
)
# --soak N adds about 2N / (Tollgate's req/s) seconds: ~5 minutes for N = 100000 at 650 req/s.


@dataclass
class Target:
    name: str
    url: str  # origin
    key: str | None
    pids: Callable[[], list[int]]  # the serving processes, for RSS

    @property
    def headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self.key:
            h["Authorization"] = f"Bearer {self.key}"
        return h


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def sh(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "n/a"


def machine() -> dict[str, str]:
    cpu = "n/a"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import aiohttp

    try:
        uv = importlib.metadata.version("uvloop")
    except importlib.metadata.PackageNotFoundError:
        uv = "not installed"
    return {
        "nproc": str(os.cpu_count()),
        "CPU": cpu,
        "Kernel": platform.release(),
        "Python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "uvloop": uv,
        "Redis": sh("redis-server", "--version").split(" sha=")[0],
        "wrk": sh("wrk", "-v").splitlines()[0].split(" [")[0] if sh("wrk", "-v") else "n/a",
    }


class Bench:
    def __init__(self, plan: Plan, scratch: Path, gateway_cpus: str, load_cpus: str) -> None:
        self.plan = plan
        self.scratch = scratch
        self.gw_cpus = gateway_cpus
        self.load_cpus = load_cpus
        self.procs: list[stack.Proc] = []
        self.cases: dict[str, dict[str, Any]] = {}
        self.redis: Any = None  # a sync redis client on the bench's Redis, for INFO
        self.quiet_wait = 60.0  # seconds to wait for quiet before running a noisy phase again
        self.retries = 2

    def bench_pids(self) -> list[int]:
        pids = []
        for p in self.procs:
            if p.alive():
                pids.append(p.pid)
                pids += stack.worker_pids(p.pid)
        return pids

    def measure(
        self, target: Target, phase: str, run: Callable[[], T], retries: int | None = None
    ) -> T:
        """Run one phase and record how busy the machine was outside the bench meanwhile.

        When other processes took more than ``NOISY`` cores, wait for quiet and run the phase
        again (up to ``retries`` times); the attempt with the least interference is kept.
        """
        retries = self.retries if retries is None else retries
        best: tuple[cpu.Usage, T] | None = None
        for attempt in range(retries + 1):
            meter = cpu.Meter(self.bench_pids)
            meter.start()
            result = run()
            usage = meter.stop()
            if best is None or usage.other_cores < best[0].other_cores:
                best = (usage, result)
            if usage.other_cores <= NOISY:
                break
            log(
                f"{target.name} / {phase}: other processes used {usage.other_cores:.2f} cores"
                + ("; waiting to run it again" if attempt < retries else "; keeping the best try")
            )
            if attempt < retries:
                cpu.wait_for_quiet(NOISY, self.quiet_wait, log)
        assert best is not None
        phases = self.cases.setdefault(target.name, {}).setdefault("cpu", {})
        phases[phase] = {**best[0].as_dict(), "attempts": attempt + 1}
        return best[1]

    # -- validation ------------------------------------------------------------------------

    def check(
        self,
        target: Target,
        what: str,
        non_2xx: int,
        errors: int,
        labels: tuple[str, str] = ("non-2xx answers", "socket errors"),
    ) -> None:
        case = self.cases.setdefault(target.name, {})
        case["errors_total"] = case.get("errors_total", 0) + non_2xx + errors
        if non_2xx or errors:
            tails = "\n".join(f"--- {p.name} ---\n{p.tail(15)}" for p in self.procs)
            raise BenchFailure(
                f"{target.name} / {what}: {non_2xx} {labels[0]} and {errors} {labels[1]}; "
                f"the figures are invalid.\n{tails}"
            )
        for p in self.procs:
            if not p.alive():
                raise BenchFailure(f"{p.name} died during {target.name} / {what}:\n{p.tail()}")

    # -- phases ----------------------------------------------------------------------------

    def wrk(self, target: Target, what: str, connections: int, seconds: float) -> WrkResult:
        result = run_wrk(
            target.url + PATH,
            body=BODY,
            key=target.key,
            connections=connections,
            seconds=seconds,
            cpus=self.load_cpus,
        )
        self.check(target, what, result.non_2xx, result.socket_errors)
        return result

    def named_pids(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.procs:
            workers = stack.worker_pids(p.pid) if p.alive() else []
            if workers:
                out.update({f"{p.name} #{i + 1}": w for i, w in enumerate(workers)})
            else:
                out[p.name] = p.pid
        return out

    def throughput(self, t: Target) -> None:
        self.wrk(t, "warm-up", 32, self.plan.warmup)

        def run() -> tuple[WrkResult, dict[str, float], dict[str, Any]]:
            pids = self.named_pids()
            before = {name: cpu.process_cpu(pid) for name, pid in pids.items()}
            if self.redis is not None:
                self.redis.config_resetstat()
            r = self.wrk(t, "throughput", 32, self.plan.throughput)
            used = {
                n: (cpu.process_cpu(pid) - before[n]) / r.requests * 1e6 for n, pid in pids.items()
            }
            used["wrk"] = r.cpu_seconds / r.requests * 1e6
            stats = self.redis.info("commandstats") if self.redis is not None else {}
            return r, used, stats

        r, used, stats = self.measure(t, "throughput", run)
        self.cases[t.name]["throughput"] = r.as_dict()
        # CPU microseconds each process spent per request served (noise from other processes
        # on the box changes it far less than it changes req/s).
        self.cases[t.name]["cpu_us_per_request"] = {n: round(v, 1) for n, v in used.items()}
        calls = {
            name.removeprefix("cmdstat_"): {
                "per_request": round(v["calls"] / r.requests, 3),
                "usec_per_call": v["usec_per_call"],
            }
            for name, v in stats.items()
            if v["calls"] >= r.requests * 0.01
        }
        self.cases[t.name]["redis_commands"] = calls
        log(
            f"{t.name:12} 32 conns: {r.rps:8.0f} req/s  "
            f"p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms"
        )

    def latency(self, t: Target) -> None:
        r = self.measure(
            t, "latency_1", lambda: self.wrk(t, "latency at 1 connection", 1, self.plan.latency)
        )
        self.cases[t.name]["latency_1"] = r.as_dict()
        log(
            f"{t.name:12} 1 conn:   p50 {r.p50_ms:.3f} ms  "
            f"p99 {r.p99_ms:.3f} ms  ({r.rps:.0f} req/s)"
        )

    def fixed_rate(self, t: Target, rate: float) -> None:
        r = self.measure(
            t,
            "rate",
            lambda: run_async(
                loadgen.open_loop(t.url + PATH, BODY, t.headers, rate=rate, seconds=self.plan.rate)
            ),
        )
        self.check(
            t, f"open loop at {rate:.0f} req/s", r.non_2xx, r.errors + (r.sent - r.completed)
        )
        self.cases[t.name]["rate"] = asdict(r)
        log(
            f"{t.name:12} {rate:.0f} req/s: p50 {r.p50_ms:.3f} ms  p99 {r.p99_ms:.3f} ms  "
            f"(achieved {r.achieved_rps:.0f}, generator lag p99 {r.lag_p99_ms:.2f} ms)"
        )

    def ttfc(self, t: Target) -> None:
        """Time to the first streamed event, one stream at a time (the relay is bench.relay)."""

        def run() -> loadgen.StreamResult:
            return run_async(
                loadgen.run_streams(
                    t.url + PATH,
                    STREAM_BODY,
                    t.headers,
                    chunks=8,
                    chunk_delay_ms=1.0,
                    concurrency=1,
                    seconds=self.plan.ttfc,
                    min_streams=50,
                    expect_cost=t.name.startswith("tollgate"),
                )
            )

        r = self.measure(t, "ttfc", run)
        self.check(t, "streams (ttfc)", r.bad, r.missing_cost, STREAM_FAULTS)
        d = asdict(r)
        d.pop("samples")
        self.cases[t.name]["ttfc"] = d
        log(f"{t.name:12} streams: TTFC p50 {r.ttfc_p50_ms:.3f} ms p99 {r.ttfc_p99_ms:.3f} ms")

    def rss(self, t: Target) -> None:
        self.cases[t.name]["rss_mb"] = [stack.rss_mb(p) for p in t.pids()]

    def soak(self, t: Target, gateway_url: str) -> dict[str, Any]:
        """Serve until 100k and then 200k metered requests; RSS at each step."""
        samples: list[tuple[int, float | None]] = []
        served = stack.metered_requests(gateway_url)
        pid = t.pids()[0]
        samples.append((served, stack.rss_mb(pid)))
        rps = self.cases[t.name]["throughput"]["rps"]
        total_reqs = 0
        total_secs = 0.0
        for goal in (self.plan.soak, 2 * self.plan.soak):
            while served < goal:
                seconds = max(2.0, min(60.0, (goal - served) / rps * 1.02))
                log(f"soak: {served:,} served, {seconds:.0f} s more towards {goal:,}")
                r = self.wrk(t, f"soak to {goal}", 32, seconds)
                rps = r.rps
                total_reqs += r.requests
                total_secs += r.seconds
                served = stack.metered_requests(gateway_url)
            samples.append((served, stack.rss_mb(pid)))
            log(f"soak: {served:,} served, RSS {samples[-1][1]:.1f} MB")
        return {
            "samples": samples,
            "n": self.plan.soak,
            "rss_after_n_mb": samples[1][1],
            "rss_after_2n_mb": samples[2][1],
            "rps": total_reqs / total_secs if total_secs else None,
            "seconds": total_secs,
        }

    def profile(self, t: Target) -> dict[str, Any] | None:
        if profile.py_spy() is None:
            log("py-spy not installed: no profile")
            return None
        seconds = self.plan.profile
        RESULTS.mkdir(exist_ok=True)
        pid = t.pids()[0]
        out: dict[str, Any] = {"seconds": seconds}
        for fmt, path in (
            ("flamegraph", RESULTS / "profile.svg"),
            ("raw", RESULTS / "profile.folded"),
        ):
            box: dict[str, WrkResult] = {}

            def drive(box: dict[str, WrkResult] = box) -> None:
                box["r"] = self.wrk(t, "profile", 32, seconds + 2)

            load = threading.Thread(target=drive)
            load.start()
            time.sleep(0.5)
            profile.record(pid, path, seconds=seconds, fmt=fmt, cpus=self.load_cpus)
            load.join()
            if "r" not in box:
                raise BenchFailure("load during profiling failed")
            out["rps"] = box["r"].rps
        summary = profile.summarise(RESULTS / "profile.folded")
        out.update(asdict(summary))
        log(
            f"profile: {summary.samples} samples; top owners: "
            + ", ".join(f"{h.frame} {h.share * 100:.0f}%" for h in summary.by_area[:5])
        )
        return out
