"""Issue 6's targets, checked against one run's figures."""

from __future__ import annotations

from typing import Any

from bench.numbers import RELAY_KINDS, diff, fmt, get, ratio, span


def targets(r: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each of the issue's targets; met is None when not measured."""
    c = r["cases"]
    out: list[tuple[str, str, bool | None]] = []

    tput = ratio(
        get(c, "tollgate-1w", "throughput", "rps"), get(c, "passthrough", "throughput", "rps")
    )
    out.append(
        (
            "Throughput, full metering, 32 clients >= 50% of bare pass-through",
            f"{fmt(tput * 100 if tput else None, 1)}%",
            None if tput is None else tput >= 0.5,
        )
    )
    d50 = diff(
        get(c, "tollgate-1w", "latency_1", "p50_ms"), get(c, "direct", "latency_1", "p50_ms")
    )
    d99 = diff(
        get(c, "tollgate-1w", "latency_1", "p99_ms"), get(c, "direct", "latency_1", "p99_ms")
    )
    out.append(
        (
            "Added latency at 1 client: p50 < 1 ms",
            f"{fmt(d50, 3)} ms",
            None if d50 is None else d50 < 1,
        )
    )
    out.append(
        (
            "Added latency at 1 client: p99 < 3 ms",
            f"{fmt(d99, 3)} ms",
            None if d99 is None else d99 < 3,
        )
    )
    ttfc = diff(
        get(c, "tollgate-1w", "ttfc", "ttfc_p50_ms"), get(c, "passthrough", "ttfc", "ttfc_p50_ms")
    )
    out.append(
        (
            "Streaming: time to first chunk within 1 ms of the bare proxy (p50)",
            f"+{fmt(ttfc, 3)} ms",
            None if ttfc is None else ttfc <= 1,
        )
    )
    rounds = get(r, "relay", "rounds")
    for key, what in RELAY_KINDS.items():
        rr = get(r, "relay", "ratio", key)  # the median of the per-round ratios
        mid = get(rr, "median")
        out.append(
            (
                f"Streaming: chunk relay >= 90% of the bare proxy ({what}; median of the "
                "per-round ratios)",
                f"{fmt(mid * 100 if mid else None, 1)}% ({fmt(rounds)} rounds: "
                f"{span(get(rr, 'min'), get(rr, 'max'), scale=100, digits=1)}%)",
                None if mid is None else mid >= 0.9,
            )
        )
    soak = r.get("soak") or {}
    at100 = get(soak, "rss_after_n_mb")
    at200 = get(soak, "rss_after_2n_mb")
    n = get(soak, "n")
    k = f"{n // 1000}k" if n else "100k"
    out.append(
        (
            f"Memory: < 120 MB RSS per worker after {k} requests (`--soak`)",
            f"{fmt(at100, 1)} MB",
            None if at100 is None else at100 < 120,
        )
    )
    growth = diff(at200, at100)
    out.append(
        (
            f"Memory: flat over the second {k} (growth < 5% or < 2 MB)",
            f"{fmt(growth, 1)} MB",
            None if growth is None or at100 is None else growth < max(2.0, 0.05 * at100),
        )
    )
    phases = ratio(
        get(c, "tollgate-2w", "throughput", "rps"), get(c, "tollgate-1w", "throughput", "rps")
    )
    side = r.get("workers_compare")  # both up at once, trials interleaved (bench.workers)
    if side:
        two = side["ratio"]
        notes = [
            f"median of {side['rounds']} interleaved rounds: "
            f"{span(min(side['ratios']), max(side['ratios']), digits=2)}x",
            f"the throughput phases, minutes apart: {fmt(phases, 2)}x",
        ]
    else:  # a run from before bench.workers
        two, notes = phases, []
    bound = two_worker_bound(c, r.get("redis_core", "load") == "gateway")
    if bound is not None:
        notes.append(
            f"the box's bound from the 1-worker figures, 2g/(g + o): {bound[0]:.2f}x, with "
            f"g = {bound[1]:,.0f} µs and o = {bound[2]:,.0f} µs"
        )
    out.append(
        (
            "Two workers on two cores >= 1.6x one worker",
            f"{fmt(two, 2)}x" + (f" ({'; '.join(notes)})" if notes else ""),
            None if two is None else two >= 1.6,
        )
    )
    return out


def two_worker_bound(
    c: dict[str, Any], redis_with_gateway: bool
) -> tuple[float, float, float] | None:
    """What two workers can gain over one when everything shares the box's two cores.

    One worker is bound by its own core: 1/g requests a second, with g the CPU per request of
    what runs on that core (the worker, and Redis when it is pinned there). Two workers share
    both cores with the rest (the upstream and wrk, and Redis when it runs on the load core),
    which spends o per request: at most 2/(g + o). So the ratio is at most 2g/(g + o), if a
    request costs two workers what it costs one (from the 1-worker run's figures; run to run,
    g moves by ~10%). Returns (bound, g, o), or None when a figure is missing.
    """
    used = get(c, "tollgate-1w", "cpu_us_per_request") or {}
    g = sum(v for k, v in used.items() if k.startswith("tollgate"))
    own = ("redis",) if redis_with_gateway else ()
    rest = ("upstream", "wrk") if redis_with_gateway else ("upstream", "redis", "wrk")
    if not g or any(used.get(name) is None for name in (*own, *rest)):
        return None
    g += sum(used[name] for name in own)
    o = sum(used[name] for name in rest)
    return 2 * g / (g + o), g, o


def targets_table(r: dict[str, Any]) -> str:
    lines = ["| Target (issue 6) | Measured | Met? |", "| --- | ---: | :---: |"]
    for name, measured, met in targets(r):
        verdict = "n/a" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {name} | {measured} | {verdict} |")
    return "\n".join(lines)
