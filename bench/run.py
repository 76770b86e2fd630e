"""Run the whole bench: ``python -m bench.run [--quick]`` (about 5-6 minutes; --quick 1.5).

Starts a fresh Redis, the bench upstream, the bare pass-through and Tollgate (1 worker, later
2), funds one account, and measures the same figures for each case side by side:

  direct       straight to the upstream
  passthrough  through the bare aiohttp pass-through (the ceiling: no auth, no Redis)
  tollgate-1w  through Tollgate with full metering, one worker
  tollgate-2w  the same with ``--workers 2`` (n/a if that does not start)

Every run is validated: any non-2xx answer or socket error stops the bench with exit code 1.
Writes bench/results/latest.{md,json,png} (and profile.svg / profile.folded in full mode).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import cpu, plot, relay, report, stack, workers
from bench.phases import (
    BODY,
    FULL,
    NOISY,
    QUICK,
    RESULTS,
    Bench,
    BenchFailure,
    Plan,
    Target,
    log,
    machine,
    sh,
)
from bench.targets import targets_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="short runs, no soak, no profile")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open-loop rate (req/s); default: half of Tollgate's 1-worker throughput",
    )
    parser.add_argument("--upstream-latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--soak",
        type=int,
        default=0,
        metavar="N",
        help="memory soak: serve N then 2N metered requests, RSS after each (issue 6: 100000)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=None,
        metavar="S",
        help="seconds of py-spy on Tollgate under load (default 10; --quick: 0 = none)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=120.0,
        help="wait up to this many seconds for other processes to leave the CPUs idle",
    )
    parser.add_argument(
        "--rev",
        default=None,
        help="measure gateway/ and pricing/ as committed at this git revision (a clean export, "
        "untouched by uncommitted edits); default: the working tree",
    )
    parser.add_argument(
        "--redis-core",
        choices=("gateway", "load"),
        default="load",
        help="where Redis runs: on the load core (default) or on the gateway's core, where "
        "Tollgate pays for its Redis but every request crosses it twice more",
    )
    parser.add_argument(
        "--grants",
        type=int,
        default=5,
        metavar="N",
        help="credit grants on the bench account besides its cash (default 5; 0 for revisions "
        "from before credits)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    args = parser.parse_args(argv)

    # Stop what we started on SIGTERM too (the finally below runs on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = QUICK if args.quick else FULL
    if args.soak:
        plan = Plan(**{**asdict(plan), "soak": args.soak})
    if args.profile is not None:
        plan = Plan(**{**asdict(plan), "profile": args.profile})
    ncpu = os.cpu_count() or 1
    gw_cpus, load_cpus = ("0", "1") if ncpu >= 2 else (None, None)
    all_cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    if load_cpus is not None:
        os.sched_setaffinity(0, {int(load_cpus)})  # this process drives the asyncio load
    scratch = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    started = time.monotonic()
    bench = Bench(plan, scratch, gw_cpus or "", load_cpus or "")
    if args.quick:
        bench.quiet_wait, bench.retries = 20.0, 1
    command = "python -m bench.run" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    result: dict[str, Any] = {
        "command": command,
        "mode": "quick" if args.quick else "full",
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "plan": asdict(plan),
        "body_bytes": len(BODY),
        "upstream_latency_ms": args.upstream_latency_ms,
        "redis_core": args.redis_core,
    }
    redis_cpus = gw_cpus if args.redis_core == "gateway" else load_cpus
    sharing = "the load generator, the upstream" + (
        " and Redis" if redis_cpus == load_cpus else " (Redis is on the other core)"
    )
    result["pinning"] = (
        [
            f"Tollgate (1 worker) and the bare pass-through: `taskset -c {gw_cpus}` "
            "(only one of them is under load at a time).",
            f"Load generators (wrk -t1, and this runner's asyncio open-loop and streaming "
            f"clients), the upstream and py-spy: `taskset -c {load_cpus}`.",
            f"Redis: `taskset -c {redis_cpus}` (--redis-core {args.redis_core}).",
            f"Tollgate with 2 workers: `taskset -c {all_cpus}` (both cores), so it shares "
            f"core {load_cpus} with {sharing}.",
        ]
        if gw_cpus
        else ["Single CPU: nothing pinned; every figure shares the one core."]
    )
    src = stack.ROOT
    if args.rev:
        src = scratch / "src"
        commit = stack.export_source(args.rev, src)
        result["git"] = f"{commit[:10]} (clean export of `{args.rev}`)"
    else:
        head = sh("git", "-C", str(stack.ROOT), "rev-parse", "--short", "HEAD")
        dirty = sh(
            "git", "-C", str(stack.ROOT), "status", "--porcelain", "--", "gateway", "pricing"
        )
        changed = [line[3:] for line in dirty.splitlines() if line.strip()]
        result["git"] = f"{head} (working tree" + (
            f"; uncommitted changes in {', '.join(changed)})" if changed else ", clean)"
        )
    fingerprint = stack.source_fingerprint(src)
    busy = cpu.wait_for_quiet(NOISY, args.wait_quiet, log)
    result["preflight_other_cores"] = round(busy, 3)
    if busy >= NOISY:
        log(
            f"warning: starting anyway with {busy:.2f} cores busy elsewhere; figures will be skewed"
        )
    if gw_cpus:
        scaling = cpu.parallel_scaling()
        result["machine"]["CPU scaling, 2 busy processes vs 1 (median of 3)"] = f"{scaling:.2f}x"
        log(f"two CPU-bound processes on two cores do {scaling:.2f}x the work of one")
    log(f"scratch directory {scratch}; pinning: gateway -> {gw_cpus}, load -> {load_cpus}")
    try:
        redis, redis_url = stack.start_redis(scratch, redis_cpus)
        bench.procs.append(redis)
        import redis as redis_py

        bench.redis = redis_py.Redis.from_url(redis_url)
        upstream, origin = stack.start_upstream(scratch, load_cpus, args.upstream_latency_ms, src)
        bench.procs.append(upstream)
        passthrough, pt_url = stack.start_passthrough(scratch, gw_cpus, origin, src)
        bench.procs.append(passthrough)
        config = stack.write_gateway_config(scratch, origin)
        gw1, gw1_url = stack.start_gateway(scratch, gw_cpus, config, redis_url, workers=1, src=src)
        bench.procs.append(gw1)
        account, key = stack.provision(gw1_url, "1000000.00", grants=args.grants)
        log(f"Tollgate 1 worker up at {gw1_url} (pid {gw1.pid}); account {account} funded "
            f"(cash and {args.grants} credit grants)")

        targets = [
            Target("direct", origin, None, lambda: [upstream.pid]),
            Target("passthrough", pt_url, None, lambda: [passthrough.pid]),
            Target("tollgate-1w", gw1_url, key, lambda: [gw1.pid]),
        ]
        for t in targets:
            bench.throughput(t)
        rate = args.rate or max(
            50.0, (bench.cases["tollgate-1w"]["throughput"]["rps"] * 0.5) // 50 * 50
        )
        result["rate"] = rate
        for t in targets:
            bench.latency(t)
        for t in targets:
            bench.fixed_rate(t, rate)
        for t in targets:
            bench.ttfc(t)
        # The relay target compares Tollgate with the pass-through: both are up, and they take
        # turns in interleaved rounds (direct follows in each round, for reference).
        result["relay"] = relay.compare(
            bench, [targets[1], targets[2], targets[0]], plan.relay_rounds
        )
        for t in targets:
            bench.rss(t)
        if plan.soak:
            result["soak"] = bench.measure(
                targets[2], "soak", lambda: bench.soak(targets[2], gw1_url), retries=0
            )
        if plan.profile:
            result["profile"] = bench.profile(targets[2])
        result["wallet_after_1w"] = stack.wallet(gw1_url, account)

        try:
            # Both cores, explicitly: a child would otherwise inherit this runner's pinning.
            gw2, gw2_url = stack.start_gateway(
                scratch, all_cpus, config, redis_url, workers=2, src=src
            )
        except RuntimeError as exc:
            log(f"Tollgate --workers 2 did not start: n/a ({str(exc).splitlines()[0]})")
            result["workers_2"] = f"n/a: {exc}"
            gw1.stop()
            bench.procs.remove(gw1)
        else:
            bench.procs.append(gw2)
            log(f"Tollgate 2 workers up at {gw2_url} (workers {stack.worker_pids(gw2.pid)})")
            t2 = Target("tollgate-2w", gw2_url, key, lambda: stack.worker_pids(gw2.pid))
            # The two-worker target: both gateways up, interleaved trials (bench.workers).
            bench.wrk(t2, "warm-up", 32, plan.warmup)
            result["workers_compare"] = workers.compare(
                bench, targets[2], t2, plan.relay_rounds, plan.relay * 2
            )
            gw1.stop()
            bench.procs.remove(gw1)
            bench.throughput(t2)
            bench.latency(t2)
            bench.fixed_rate(t2, rate)
            bench.ttfc(t2)
            relay.compare(bench, [t2], 1)  # compared with nothing, so one trial
            bench.rss(t2)
            result["workers_2"] = "ok"
            result["wallet_after"] = stack.wallet(gw2_url, account)
        held = result.get("wallet_after", result["wallet_after_1w"]).get("held")
        if held not in ("0", "0.00", "0.000000000"):
            log(f"note: wallet still holds {held} after the runs")
        if stack.source_fingerprint(src) != fingerprint:
            result["source_changed"] = True
            log("warning: the gateway's source changed during the run; use --rev for a stable one")
    except BenchFailure as exc:
        print(f"\nBENCH FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        for p in reversed(bench.procs):
            p.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", str(scratch)], check=False)

    result["cases"] = bench.cases
    result["elapsed_s"] = time.monotonic() - started
    result["notes"] = NOTES.format(
        rate=f"{rate:.0f}",
        how="as given" if args.rate else "half of Tollgate's 1-worker throughput",
        body=len(BODY),
        latency=f"{args.upstream_latency_ms:g}",
        rounds=plan.relay_rounds,
        trial=f"{plan.relay:g}",
        wrk_trial=f"{plan.relay * 2:g}",
    )
    RESULTS.mkdir(exist_ok=True)
    report.write_json(result, RESULTS / "latest.json")
    report.write_markdown(result, RESULTS / "latest.md")
    plot.write_plot(result, RESULTS / "latest.png")
    print()
    print(report.markdown_table(result))
    print()
    print(report.relay_table(result))
    print()
    print(targets_table(result))
    log(f"done in {result['elapsed_s']:.0f} s; wrote {RESULTS}/latest.md, latest.json, latest.png")
    return 0


NOTES = """\
Cases: **direct** is the bench upstream itself; **bare pass-through** is `bench/passthrough.py`
(aiohttp server + client, no auth, no Redis, no JSON); **Tollgate** is `python -m gateway serve`
with full metering (key auth, Lua admit with hold and limits, forward, usage parsing, Lua settle,
request record, Prometheus metrics). Non-streaming requests are a {body}-byte chat completion
(`max_tokens: 64`) answered with ~640 bytes; the upstream adds {latency} ms. Throughput and
1-connection latency come from `wrk -t1` (`bench/post.lua`); the fixed-rate row from an asyncio
open-loop generator sending at {rate} req/s ({how}), latency from send to last byte. Streams:
TTFC is the time from sending to the first `data:` event (8 content chunks 1 ms apart, one
stream at a time; the lean client of `bench/streamclient.py`); relay is `data:` events
delivered per second to `wrk` (after 0.3 s of checked streams from that client) with the
upstream sending 2,000 (1 stream) or 500 (16 concurrent streams) chunks back to back (the
requests ask `max_tokens` 4096), in
{rounds} interleaved rounds of {trial} s trials (the pass-through and Tollgate 1 worker
alternating first, direct after them; Tollgate 2 workers one trial, on its own): each case's
figure is its median over the rounds, and the relay targets use the median of the per-round
ratios (see "Stream relay, round by round"). The two-worker target compares 1 and 2 workers
the same way: both up at once, {rounds} interleaved rounds of {wrk_trial} s wrk trials at 32
connections, median of the per-round ratios (`bench/workers.py`; every trial is in
`latest.json`). RSS is VmRSS of each serving process after its
runs. CPU per request is each process's CPU time during the throughput run over the requests
served. "Other processes' CPU" is what the rest of the box used meanwhile (phases above 0.15
cores are run again, the quietest attempt kept; a relay round is run again whole)."""


if __name__ == "__main__":
    sys.exit(main())
