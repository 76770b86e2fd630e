"""Two revisions of the gateway side by side: interleaved trials, per-round ratios.

    python -m bench.ab REV [--against REV2] [--streams 16] [--rounds 8] [--seconds 2]
    python -m bench.ab REV --wrk [--rounds 6]

A change worth a few percent cannot be seen by comparing two full runs on this shared box
(run to run, the same code moves by 10-20%). Here both gateways are up at once, pinned to the
same core (only one under load at a time), sharing one Redis and one upstream; each round runs
a trial on each, alternating which goes first, and the figure is the median of the per-round
ratios B / A. A is ``REV`` (from ``git archive``), B is ``--against`` (default: the working
tree). ``--wrk`` compares throughput at 32 connections instead of the streaming relay.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import cpu, loadgen, stack
from bench.phases import BODY, PATH, STREAM_BODY, run_async
from bench.relay import KINDS
from bench.wrk import run_wrk

GATEWAY_CPU, LOAD_CPU = "0", "1"


def relay_trial(
    url: str, key: str, streams: int, seconds: float, chunks: int | None = None
) -> tuple[float, int]:
    """Chunks per second and chunks relayed, every stream checked."""
    kind = dict(KINDS["relay_1" if streams == 1 else "relay_16"])
    if chunks:
        kind["chunks"] = chunks
    r = run_async(
        loadgen.run_streams(
            url + PATH, STREAM_BODY, {"Authorization": f"Bearer {key}"},
            chunk_delay_ms=0.0, seconds=seconds, expect_cost=True, **kind,
        )
    )  # fmt: skip
    if r.bad or r.missing_cost:
        raise RuntimeError(f"{url}: {r.bad} bad streams, {r.missing_cost} without the cost")
    return r.chunks_per_s, r.events


def wrk_trial(url: str, key: str, seconds: float) -> tuple[float, int]:
    r = run_wrk(url + PATH, body=BODY, key=key, connections=32, seconds=seconds, cpus=LOAD_CPU)
    if r.non_2xx or r.socket_errors:
        raise RuntimeError(f"{url}: {r.non_2xx} non-2xx, {r.socket_errors} socket errors")
    return r.rps, r.requests


def compare(
    trial: Callable[[str, str], tuple[float, int]],
    gateways: dict[str, tuple[stack.Proc, str]],
    key: str,
    rounds: int,
) -> dict[str, list[tuple[float, float]]]:
    """Per gateway, per round: (rate, worker CPU µs per unit of work)."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in gateways}
    names = list(gateways)
    for n in range(rounds):
        for name in names if n % 2 == 0 else names[::-1]:
            proc, url = gateways[name]
            before = cpu.process_cpu(proc.pid)
            rate, work = trial(url, key)
            used = cpu.process_cpu(proc.pid) - before
            out[name].append((rate, used / work * 1e6))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.ab", description=__doc__.splitlines()[0])
    p.add_argument("rev", help="A: a git revision")
    p.add_argument("--against", help="B: a git revision (default: the working tree)")
    p.add_argument("--streams", type=int, choices=(1, 16), default=16, help="concurrent streams")
    p.add_argument("--chunks", type=int, help="chunks per stream (default: as bench.relay)")
    p.add_argument("--wrk", action="store_true", help="throughput at 32 connections instead")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args(argv)
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    with tempfile.TemporaryDirectory(prefix="tollgate-ab-") as tmp:
        scratch = Path(tmp)
        sources = {"A": scratch / "A", "B": scratch / "B" if args.against else stack.ROOT}
        stack.export_source(args.rev, sources["A"])
        if args.against:
            stack.export_source(args.against, sources["B"])
        procs: list[stack.Proc] = []
        try:
            redis, redis_url = stack.start_redis(scratch, LOAD_CPU)
            procs.append(redis)
            upstream, origin = stack.start_upstream(scratch, LOAD_CPU, 0.0)
            procs.append(upstream)
            config = stack.write_gateway_config(scratch, origin)
            gateways: dict[str, tuple[stack.Proc, str]] = {}
            for name, src in sources.items():
                (scratch / name).mkdir(exist_ok=True)
                proc, url = stack.start_gateway(
                    scratch / name, GATEWAY_CPU, config, redis_url, 1, src=src
                )
                procs.append(proc)
                gateways[name] = (proc, url)
            _, key = stack.provision(gateways["A"][1], "1000000.00")
            if args.wrk:
                what, unit = "req/s at 32 connections", "request"

                def trial(url: str, key: str) -> tuple[float, int]:
                    return wrk_trial(url, key, args.seconds)
            else:
                what, unit = f"chunks/s at {args.streams} stream(s)", "chunk"

                def trial(url: str, key: str) -> tuple[float, int]:
                    return relay_trial(url, key, args.streams, args.seconds, args.chunks)

            for name in gateways:  # warm up
                trial(gateways[name][1], key)
            got = compare(trial, gateways, key, args.rounds)
        finally:
            for proc in reversed(procs):
                proc.stop()
    label = {"A": args.rev, "B": args.against or "working tree"}
    print(f"{what}, {args.rounds} rounds of {args.seconds:g} s, interleaved:")
    for name, trials in got.items():
        rates = [r for r, _ in trials]
        print(
            f"  {name} ({label[name]}): median {statistics.median(rates):,.0f} "
            f"({min(rates):,.0f}-{max(rates):,.0f}); worker CPU per {unit} "
            f"{statistics.median(c for _, c in trials):.2f} µs"
        )
    ratios = [b[0] / a[0] for a, b in zip(got["A"], got["B"], strict=True)]
    print(
        f"  B / A per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
        f"median {statistics.median(ratios):.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
