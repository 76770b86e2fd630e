"""Turn one run's raw numbers into ``latest.json``, ``latest.md`` and ``latest.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.numbers import CASES, LABELS, RELAY_KINDS, diff, fmt, get, span
from bench.targets import targets_table


def rows(r: dict[str, Any]) -> list[tuple[str, list[str]]]:
    c = r["cases"]
    rate = r.get("rate")

    def row(label: str, *path: str, digits: int = 2) -> tuple[str, list[str]]:
        return label, [fmt(get(c, case, *path), digits) for case in CASES]

    def added(label: str, phase: str, field: str) -> tuple[str, list[str]]:
        base = get(c, "direct", phase, field)
        return label, [
            fmt(diff(get(c, case, phase, field), base), 3) if case != "direct" else "-"
            for case in CASES
        ]

    def over(label: str, phase: str, field: str, base_case: str) -> tuple[str, list[str]]:
        base = get(c, base_case, phase, field)
        return label, [
            fmt(diff(get(c, case, phase, field), base), 3) if case.startswith("tollgate") else "-"
            for case in CASES
        ]

    def rss(case: str) -> str:
        v = get(c, case, "rss_mb")
        if isinstance(v, list):
            return " / ".join(fmt(x, 1) for x in v) if v else "n/a"
        return fmt(v, 1)

    def serving_cpu(case: str) -> str:
        used = get(c, case, "cpu_us_per_request") or {}
        prefix = {"direct": "upstream", "passthrough": "passthrough"}.get(case, "tollgate")
        mine = [v for k, v in used.items() if k.startswith(prefix)]
        return fmt(sum(mine), 0) if mine else "n/a"

    def proc_cpu(case: str, name: str) -> str:
        return fmt(get(c, case, "cpu_us_per_request", name), 0)

    def rounds_of(key: str) -> str:
        n = {len(get(c, case, key, "rounds") or []) for case in CASES} - {0}
        return "the rounds" if len(n) != 1 else f"{n.pop()} rounds"

    def relay_range(case: str, key: str) -> str:
        trials = get(c, case, key, "rounds") or []
        if len(trials) == 1:
            return "1 trial"
        return span(get(c, case, key, "chunks_per_s_min"), get(c, case, key, "chunks_per_s_max"))

    def other(case: str) -> str:
        phases = get(c, case, "cpu") or {}
        worst = max((v["other_cores"] for v in phases.values()), default=None)
        return fmt(worst, 2)

    return [
        row("Throughput, 32 connections (req/s)", "throughput", "rps", digits=0),
        row("  latency p50 / at 32 connections (ms)", "throughput", "p50_ms"),
        row("  latency p99 / at 32 connections (ms)", "throughput", "p99_ms"),
        row("Latency, 1 connection, p50 (ms)", "latency_1", "p50_ms", digits=3),
        row("Latency, 1 connection, p99 (ms)", "latency_1", "p99_ms", digits=3),
        added("  added vs direct, p50 (ms)", "latency_1", "p50_ms"),
        added("  added vs direct, p99 (ms)", "latency_1", "p99_ms"),
        over("  added vs pass-through, p50 (ms)", "latency_1", "p50_ms", "passthrough"),
        row(f"Fixed rate {fmt(rate, 0)} req/s open loop, p50 (ms)", "rate", "p50_ms", digits=3),
        row(f"Fixed rate {fmt(rate, 0)} req/s open loop, p99 (ms)", "rate", "p99_ms", digits=3),
        row("  achieved (req/s)", "rate", "achieved_rps", digits=0),
        added("  added vs direct, p50 (ms)", "rate", "p50_ms"),
        added("  added vs direct, p99 (ms)", "rate", "p99_ms"),
        row("Stream time to first chunk, p50 (ms)", "ttfc", "ttfc_p50_ms", digits=3),
        row("Stream time to first chunk, p99 (ms)", "ttfc", "ttfc_p99_ms", digits=3),
        over("  TTFC added vs pass-through, p50 (ms)", "ttfc", "ttfc_p50_ms", "passthrough"),
        *[
            line
            for key, what in RELAY_KINDS.items()
            for line in (
                row(f"Stream relay, {what}, median (chunks/s)", key, "chunks_per_s", digits=0),
                (f"  min-max over {rounds_of(key)}", [relay_range(k, key) for k in CASES]),
            )
        ],
        ("CPU per request, serving process(es) (us)", [serving_cpu(k) for k in CASES]),
        ("  upstream CPU per request (us)", [proc_cpu(k, "upstream") for k in CASES]),
        ("  Redis CPU per request (us)", [proc_cpu(k, "redis") for k in CASES]),
        ("  wrk CPU per request (us)", [proc_cpu(k, "wrk") for k in CASES]),
        ("RSS after the runs (MB, per worker)", [rss(case) for case in CASES]),
        row("Non-2xx / socket errors, all runs", "errors_total", digits=0),
        ("Other processes' CPU meanwhile, worst phase (cores)", [other(case) for case in CASES]),
    ]


def markdown_table(r: dict[str, Any]) -> str:
    lines = [
        "| Figure | " + " | ".join(LABELS[c] for c in CASES) + " |",
        "| --- |" + " ---: |" * len(CASES),
    ]
    for label, cells in rows(r):
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def relay_table(r: dict[str, Any]) -> str:
    """The relay comparison round by round: the order, each case's chunks/s, the ratio."""
    relay = r.get("relay") or {}
    names: list[str] = relay.get("cases", [])
    if len(names) < 2:
        return "(no interleaved relay rounds in this run)"
    c, of = r["cases"], relay["ratio"]["of"]
    lines = [
        "| Round | Streams | First | " + " | ".join(LABELS[n] for n in names)
        + f" | Others' CPU, worst trial (cores) | {LABELS[of[0]]} / {LABELS[of[1]]} |",
        "| ---: | ---: | --- |" + " ---: |" * (len(names) + 2),
    ]  # fmt: skip
    for key, what in RELAY_KINDS.items():
        streams, rr = what.split()[0], relay["ratio"][key]
        for i, order in enumerate(relay["orders"]):
            trials = [c[n][key]["rounds"][i] for n in names]
            cells = [fmt(t["chunks_per_s"], 0) for t in trials]
            cells += [fmt(max(t["other_cores"] for t in trials), 2)]
            cells += [f"{fmt(rr['per_round'][i] * 100, 1)}%"]
            lines.append(
                f"| {i + 1} | {streams} | {LABELS[order[0]]} | " + " | ".join(cells) + " |"
            )
        med = [fmt(c[n][key]["chunks_per_s"], 0) for n in names]
        rng = [span(c[n][key]["chunks_per_s_min"], c[n][key]["chunks_per_s_max"]) for n in names]
        med += ["", f"**{fmt(rr['median'] * 100, 1)}%**"]
        rng += ["", f"{span(rr['min'], rr['max'], scale=100, digits=1)}%"]
        lines.append(f"| median | {streams} | | " + " | ".join(med) + " |")
        lines.append(f"| min-max | {streams} | | " + " | ".join(rng) + " |")
    return "\n".join(lines)


def machine_table(m: dict[str, Any]) -> str:
    lines = ["| | |", "| --- | --- |"]
    for k, v in m.items():
        lines.append(f"| {k} | {v} |")
    return "\n".join(lines)


def write_markdown(r: dict[str, Any], path: Path) -> None:
    soak = r.get("soak") or {}
    noisy = fmt(get(r, "relay", "noisy_cores"))
    parts = [
        "# Tollgate bench: latest run",
        "",
        f"Command: `{r['command']}` ({r['mode']} mode), {r['started']}, "
        f"took {fmt(r.get('elapsed_s'), 0)} s. Gateway measured: {r['git']}.",
        "",
        *(
            ["**Warning: the gateway's source files changed during this run.**", ""]
            if r.get("source_changed")
            else []
        ),
        "## Machine",
        "",
        machine_table(r["machine"]),
        "",
        "## Pinning",
        "",
        *[f"- {line}" for line in r["pinning"]],
        "",
        "## Results",
        "",
        markdown_table(r),
        "",
        r["notes"],
        "",
        "## Targets",
        "",
        targets_table(r),
        "",
        "## Stream relay, round by round",
        "",
        f"Chunks/s per trial ({fmt(get(r, 'relay', 'seconds_per_trial'))} s each), all servers "
        "up at once. In each round the cases take turns at 1 stream, then at 16 streams; the "
        "first two alternate which goes first, the rest follow. A round in which other "
        f"processes took more than {noisy} cores during any trial is run again whole (the "
        "quietest attempt kept). Each ratio comes from one round's two trials, seconds apart; "
        "the targets use the median of these ratios.",
        "",
        relay_table(r),
        "",
    ]
    if soak:
        parts += [
            "## Memory soak (Tollgate, 1 worker, wrk at 32 connections)",
            "",
            "| Metered requests served | RSS (MB) |",
            "| ---: | ---: |",
            *[f"| {fmt(n)} | {fmt(mb, 1)} |" for n, mb in soak.get("samples", [])],
            "",
            f"Soak throughput: {fmt(soak.get('rps'), 0)} req/s over "
            f"{fmt(soak.get('seconds'), 0)} s.",
            "",
        ]
    commands = get(r["cases"], "tollgate-1w", "redis_commands") or {}
    if commands:
        parts += [
            "## Redis commands per metered request (Tollgate 1 worker, throughput run)",
            "",
            "| Command | Calls per request | us per call |",
            "| --- | ---: | ---: |",
            *[
                f"| `{name}` | {v['per_request']:.2f} | {v['usec_per_call']:.1f} |"
                for name, v in sorted(commands.items(), key=lambda kv: -kv[1]["per_request"])
            ],
            "",
            "Commands run inside Lua scripts are counted too (and inside the script's time).",
            "",
        ]
    prof = r.get("profile")
    if prof:
        parts += [
            "## Profile (py-spy, Tollgate 1 worker under wrk at 32 connections)",
            "",
            f"{fmt(prof['samples'])} samples at 200 Hz over {prof['seconds']} s "
            f"(throughput while sampled: {fmt(prof.get('rps'), 0)} req/s). "
            "Flame graph: `profile.svg`; folded stacks: `profile.folded`.",
            "",
            "Self time by owner of the leaf frame:",
            "",
            "| Owner | Share |",
            "| --- | ---: |",
            *[f"| `{h['frame']}` | {h['share'] * 100:.1f}% |" for h in prof["by_area"]],
            "",
            "Inclusive time (Tollgate's functions and the libraries on its path):",
            "",
            "| Function | Share |",
            "| --- | ---: |",
            *[f"| `{h['frame']}` | {h['share'] * 100:.1f}% |" for h in prof["inclusive_top"]],
            "",
            "Self time (leaf frames):",
            "",
            "| Frame | Share |",
            "| --- | ---: |",
            *[f"| `{h['frame']}` | {h['share'] * 100:.1f}% |" for h in prof["self_top"]],
            "",
        ]
    path.write_text("\n".join(parts))


def write_json(r: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(r, indent=2, default=str) + "\n")
