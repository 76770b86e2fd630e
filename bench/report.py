"""Turn one run's raw numbers into ``latest.json``, ``latest.md`` and ``latest.png``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

CASES = ("direct", "passthrough", "tollgate-1w", "tollgate-2w")
LABELS = {
    "direct": "direct (upstream)",
    "passthrough": "bare pass-through",
    "tollgate-1w": "Tollgate, 1 worker",
    "tollgate-2w": "Tollgate, 2 workers",
}


def get(d: dict[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(a: Any, b: Any) -> float | None:
    if a is None or b is None or not b:
        return None
    return float(a) / float(b)


def diff(a: Any, b: Any) -> float | None:
    return None if a is None or b is None else float(a) - float(b)


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
    for key, what in (("relay_1", "1 stream"), ("relay_16", "16 streams")):
        rr = ratio(
            get(c, "tollgate-1w", key, "chunks_per_s"), get(c, "passthrough", key, "chunks_per_s")
        )
        out.append(
            (
                f"Streaming: chunk relay >= 90% of the bare proxy ({what})",
                f"{fmt(rr * 100 if rr else None, 1)}%",
                None if rr is None else rr >= 0.9,
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
    two = ratio(
        get(c, "tollgate-2w", "throughput", "rps"), get(c, "tollgate-1w", "throughput", "rps")
    )
    out.append(
        (
            "Two workers on two cores >= 1.6x one worker",
            f"{fmt(two, 2)}x",
            None if two is None else two >= 1.6,
        )
    )
    return out


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
        row("Stream relay, 1 stream (chunks/s)", "relay_1", "chunks_per_s", digits=0),
        row("Stream relay, 16 streams (chunks/s)", "relay_16", "chunks_per_s", digits=0),
        ("CPU per request, serving process(es) (us)", [serving_cpu(k) for k in CASES]),
        ("  upstream CPU per request (us)", [proc_cpu(k, "upstream") for k in CASES]),
        ("  Redis CPU per request (us)", [proc_cpu(k, "redis") for k in CASES]),
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


def targets_table(r: dict[str, Any]) -> str:
    lines = ["| Target (issue 6) | Measured | Met? |", "| --- | ---: | :---: |"]
    for name, measured, met in targets(r):
        verdict = "n/a" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {name} | {measured} | {verdict} |")
    return "\n".join(lines)


def machine_table(m: dict[str, Any]) -> str:
    lines = ["| | |", "| --- | --- |"]
    for k, v in m.items():
        lines.append(f"| {k} | {v} |")
    return "\n".join(lines)


def write_markdown(r: dict[str, Any], path: Path) -> None:
    soak = r.get("soak") or {}
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


def write_plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = r["cases"]
    names = [LABELS[k].replace(", ", "\n") for k in CASES]
    colors = ["#888888", "#4c72b0", "#dd8452", "#c44e52"]

    def values(*p: str) -> list[float]:
        out = []
        for case in CASES:
            v = get(c, case, *p)
            out.append(float(v) if isinstance(v, int | float) else 0.0)
        return out

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ax = axes[0][0]
    ax.bar(names, values("throughput", "rps"), color=colors)
    ax.set_title("Throughput at 32 connections (req/s, higher is better)")
    for i, v in enumerate(values("throughput", "rps")):
        ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom")

    def paired(ax: Any, phase: str, title: str) -> None:
        p50, p99 = values(phase, "p50_ms"), values(phase, "p99_ms")
        x = range(len(CASES))
        ax.bar([i - 0.2 for i in x], p50, width=0.4, label="p50", color="#4c72b0")
        ax.bar([i + 0.2 for i in x], p99, width=0.4, label="p99", color="#dd8452")
        ax.set_xticks(list(x), names)
        ax.set_title(title)
        ax.legend()
        for i in x:
            ax.text(i - 0.2, p50[i], f"{p50[i]:.2f}", ha="center", va="bottom", fontsize=8)
            ax.text(i + 0.2, p99[i], f"{p99[i]:.2f}", ha="center", va="bottom", fontsize=8)

    paired(axes[0][1], "latency_1", "Latency at 1 connection (ms, lower is better)")
    paired(axes[1][0], "rate", f"Latency at a fixed {fmt(r.get('rate'), 0)} req/s (ms)")
    ax = axes[1][1]
    ttfc = values("ttfc", "ttfc_p50_ms")
    relay = [v / 1000 for v in values("relay_16", "chunks_per_s")]
    x = range(len(CASES))
    ax.bar([i - 0.2 for i in x], ttfc, width=0.4, label="TTFC p50 (ms)", color="#55a868")
    ax.set_xticks(list(x), names)
    ax2 = ax.twinx()
    ax2.bar(
        [i + 0.2 for i in x], relay, width=0.4, label="k chunks/s (16 streams)", color="#8172b2"
    )
    ax.set_ylim(0, max(ttfc, default=1.0) * 1.45 or 1.0)  # headroom for the legend
    ax2.set_ylim(0, max(relay, default=1.0) * 1.45 or 1.0)
    ax.set_title("Streaming: time to first chunk (left) and relay rate (right)")
    ax.set_ylabel("ms")
    ax2.set_ylabel("thousand chunks/s")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", ncol=2)
    fig.suptitle(f"Tollgate bench ({r['mode']}), {r['machine'].get('CPU', '')}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
