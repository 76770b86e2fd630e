"""The figures of a run as the report shows them: cases, labels, lookups and number formats."""

from __future__ import annotations

import math
from typing import Any

CASES = ("direct", "passthrough", "tollgate-1w", "tollgate-2w")
LABELS = {
    "direct": "direct (upstream)",
    "passthrough": "bare pass-through",
    "tollgate-1w": "Tollgate, 1 worker",
    "tollgate-2w": "Tollgate, 2 workers",
}


RELAY_KINDS = {"relay_1": "1 stream", "relay_16": "16 streams"}


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


def span(lo: Any, hi: Any, *, scale: float = 1.0, digits: int = 0) -> str:
    """``lo-hi``, or the one value when they are equal (a single trial)."""
    if lo is None or hi is None:
        return "n/a"
    a, b = fmt(float(lo) * scale, digits), fmt(float(hi) * scale, digits)
    return a if a == b else f"{a}-{b}"
