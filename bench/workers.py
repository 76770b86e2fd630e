"""Two workers against one, side by side: interleaved throughput trials, per-round ratios.

The throughput phases of one and two workers run minutes apart, and on this shared VM the
same gateway's req/s drifts by 10-20% over minutes, enough to move their ratio by as much. For
the two-worker target both gateways are up at once (one worker on the gateway's core, two on
both cores; an idle gateway costs nothing) and take turns: each round runs wrk at 32
connections on one and then the other, alternating which goes first, and the target uses the
median of the per-round ratios, as the relay's does (``bench.relay``).
"""

from __future__ import annotations

import statistics
from typing import Any

from bench import cpu
from bench.phases import Bench, Target, log


def compare(bench: Bench, one: Target, two: Target, rounds: int, seconds: float) -> dict[str, Any]:
    """Per round: each gateway's req/s and the others' CPU meanwhile; the ratios two / one."""
    trials: dict[str, list[dict[str, Any]]] = {one.name: [], two.name: []}
    ratios: list[float] = []
    for n in range(rounds):
        got: dict[str, float] = {}
        for t in (one, two) if n % 2 == 0 else (two, one):
            meter = cpu.Meter(bench.bench_pids)
            meter.start()
            r = bench.wrk(t, f"workers round {n + 1}", 32, seconds)
            others = meter.stop().other_cores
            got[t.name] = r.rps
            trials[t.name].append(
                {"round": n + 1, "rps": round(r.rps, 1), "other_cores": round(others, 3)}
            )
        ratios.append(got[two.name] / got[one.name])
        log(f"workers round {n + 1}: {got[one.name]:.0f} / {got[two.name]:.0f} req/s, "
            f"ratio {ratios[-1]:.2f}")  # fmt: skip
    return {
        "rounds": rounds,
        "seconds": seconds,
        "trials": trials,
        "ratios": [round(x, 4) for x in ratios],
        "ratio": statistics.median(ratios),
    }
