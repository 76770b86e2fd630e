"""``latest.png``: throughput, latency and streaming side by side, one bar per case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.numbers import CASES, LABELS, fmt, get


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
    relay = [v / 1000 for v in values("relay_16", "chunks_per_s")]  # the median of the rounds
    low = [m - v / 1000 for m, v in zip(relay, values("relay_16", "chunks_per_s_min"), strict=True)]
    high = [
        v / 1000 - m for m, v in zip(relay, values("relay_16", "chunks_per_s_max"), strict=True)
    ]
    x = range(len(CASES))
    ax.bar([i - 0.2 for i in x], ttfc, width=0.4, label="TTFC p50 (ms)", color="#55a868")
    ax.set_xticks(list(x), names)
    ax2 = ax.twinx()
    ax2.bar(
        [i + 0.2 for i in x],
        relay,
        width=0.4,
        yerr=[[max(0.0, v) for v in low], [max(0.0, v) for v in high]],
        capsize=3,
        label="k chunks/s (16 streams, median and range)",
        color="#8172b2",
    )
    ax.set_ylim(0, max(ttfc, default=1.0) * 1.45 or 1.0)  # headroom for the legend
    ax2.set_ylim(
        0, max((m + h for m, h in zip(relay, high, strict=True)), default=1.0) * 1.45 or 1.0
    )
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
