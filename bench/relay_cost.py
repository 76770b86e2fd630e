"""Where a relayed event's cost goes: pass-through against Tollgate, process by process.

    python -m bench.relay_cost [--rounds 6] [--streams 16] [--chunks 500] [--redis-cpu 1]

Both proxies are up at once on core 0 and take turns (interleaved rounds of 2 s trials, as in
``bench.relay``), with the upstream, Redis and this process's streaming client on core 1
(``--redis-cpu 0`` moves Redis to the proxies' core instead). For each, the median over the
rounds of: events per second; CPU per event of the proxy, the upstream, the client and Redis;
and read and write syscalls per event of the proxy, the upstream and the client
(``/proc/<pid>/io``), which say how many events each read or write carried. Running it with
two ``--chunks`` values separates each proxy's cost per stream from its cost per event.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench import cpu, loadgen, stack
from bench.phases import PATH, STREAM_BODY, run_async

PROXY_CPU, LOAD_CPU = "0", "1"


def syscalls(pid: int) -> tuple[int, int]:
    """(read, write) syscalls of ``pid`` so far."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["syscr"]), int(fields["syscw"])


def trial(
    url: str, key: str | None, pids: dict[str, int], args: argparse.Namespace
) -> dict[str, float]:
    """One trial: events per second, and per event each process's CPU (µs) and syscalls."""
    me = os.getpid()
    io0 = {name: syscalls(pid) for name, pid in {**pids, "client": me}.items()}
    cpu0 = {name: cpu.process_cpu(pid) for name, pid in pids.items()}
    own0 = time.process_time()
    r = run_async(
        loadgen.run_streams(
            url + PATH, STREAM_BODY, {"Authorization": f"Bearer {key}"} if key else {},
            chunks=args.chunks, chunk_delay_ms=0.0, concurrency=args.streams,
            seconds=args.seconds, min_streams=args.streams, expect_cost=key is not None,
        )
    )  # fmt: skip
    if r.bad or r.missing_cost:
        raise RuntimeError(f"{url}: {r.bad} bad streams, {r.missing_cost} without the cost")
    out = {"rate": r.chunks_per_s}
    for name, pid in pids.items():
        out[f"cpu_{name}"] = (cpu.process_cpu(pid) - cpu0[name]) / r.events * 1e6
    out["cpu_client"] = (time.process_time() - own0) / r.events * 1e6
    for name, pid in {**pids, "client": me}.items():
        reads, writes = syscalls(pid)
        out[f"reads_{name}"] = (reads - io0[name][0]) / r.events
        out[f"writes_{name}"] = (writes - io0[name][1]) / r.events
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.relay_cost", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--streams", type=int, default=16)
    p.add_argument("--chunks", type=int, default=500, help="content chunks per stream")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--redis-cpu", choices=(PROXY_CPU, LOAD_CPU), default=LOAD_CPU)
    args = p.parse_args(argv)
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    procs: list[stack.Proc] = []
    with tempfile.TemporaryDirectory(prefix="tollgate-relay-cost-") as tmp:
        scratch = Path(tmp)
        try:
            redis, redis_url = stack.start_redis(scratch, args.redis_cpu)
            procs.append(redis)
            upstream, origin = stack.start_upstream(scratch, LOAD_CPU, 0.0)
            procs.append(upstream)
            passthrough, pt_url = stack.start_passthrough(scratch, PROXY_CPU, origin)
            procs.append(passthrough)
            config = stack.write_gateway_config(scratch, origin)
            gateway, gw_url = stack.start_gateway(scratch, PROXY_CPU, config, redis_url, 1)
            procs.append(gateway)
            _, key = stack.provision(gw_url, "1000000.00")
            cases = {
                "pass-through": (pt_url, None, passthrough.pid),
                "Tollgate": (gw_url, key, gateway.pid),
            }
            rows: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
            for url, k, _ in cases.values():  # warm up
                run_async(loadgen.run_streams(
                    url + PATH, STREAM_BODY, {"Authorization": f"Bearer {k}"} if k else {},
                    chunks=args.chunks, chunk_delay_ms=0.0, concurrency=args.streams,
                    seconds=1.0, min_streams=args.streams,
                ))  # fmt: skip
            for n in range(args.rounds):
                names = list(cases) if n % 2 == 0 else list(cases)[::-1]
                for name in names:
                    url, k, pid = cases[name]
                    pids = {"proxy": pid, "upstream": upstream.pid, "redis": redis.pid}
                    rows[name].append(trial(url, k, pids, args))
        finally:
            for proc in reversed(procs):
                proc.stop()
    where = "the proxies' core" if args.redis_cpu == PROXY_CPU else "the load's core"
    print(f"{args.streams} streams of {args.chunks} chunks, {args.rounds} interleaved rounds of "
          f"{args.seconds:g} s, Redis on {where}; medians over the rounds:")  # fmt: skip
    for name, trials in rows.items():
        m = {field: statistics.median(t[field] for t in trials) for field in trials[0]}
        print(f"  {name}: {m['rate']:,.0f} events/s")
        print("    CPU per event (µs): " + ", ".join(
            f"{proc} {m['cpu_' + proc]:.2f}" for proc in ("proxy", "upstream", "client", "redis")
        ))  # fmt: skip
        print(f"    events per proxy read {1 / m['reads_proxy']:.0f}, per proxy write "
              f"{1 / m['writes_proxy']:.0f}, per client read {1 / m['reads_client']:.0f}; "
              f"upstream writes per event {m['writes_upstream']:.2f}")  # fmt: skip
    ratios = [b["rate"] / a["rate"] for a, b in zip(*rows.values(), strict=True)]
    print(f"  Tollgate / pass-through per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
          f"median {statistics.median(ratios):.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
