"""Upstream usage is checked before it is billed (pure).

A provider's usage report is believed only when it is believable: counts that are not
non-negative whole numbers (negative, fractional, strings, booleans) make the report unreadable,
so the request is billed from the gateway's estimate; integral floats (``50.0``) are read as
the integers they are. A report far above what the request could produce (10^15 output tokens
for ``max_tokens: 100``) is absurd: estimated too. A report merely above the request's output
bound is billed (providers count some things the gateway cannot bound exactly) but recorded.
Each of these is an ``Anomaly`` on the request's record, with the raw value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from pricing import Usage

# Above this many times the output bound (plus a margin for small bounds), a report is absurd.
ABSURD_FACTOR = 4
ABSURD_MARGIN = 10_000
# No request reads more than this many tokens: a larger count is a lie, not a prompt.
MAX_COUNT = 100_000_000
RAW_CHARS = 200  # how much of a raw value a record keeps


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str  # unreadable_usage | absurd_usage | output_over_bound | unexpected_body | ...
    detail: str  # the raw value, or what was wrong (at most RAW_CHARS)

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


def anomaly(kind: str, raw: object) -> Anomaly:
    text = raw if isinstance(raw, str) else orjson.dumps(raw, default=repr).decode()
    return Anomaly(kind, text[:RAW_CHARS])


def read_count(value: object) -> int | None:
    """A token count as an int, or None when ``value`` is not a whole number from 0 to
    ``MAX_COUNT`` (``true`` is not a count; ``50.0`` is 50; 10^15 is a lie)."""
    if type(value) is int:
        return value if 0 <= value <= MAX_COUNT else None
    if type(value) is float and math.isfinite(value) and 0 <= value <= MAX_COUNT:
        return int(value) if value.is_integer() else None
    return None


def optional_count(value: object) -> int:
    """A count that may be absent: 0 when ``value`` is None, -1 when it is not a count."""
    if type(value) is int and 0 <= value <= MAX_COUNT:  # the usual case, first
        return value
    if value is None:
        return 0
    read = read_count(value)
    return -1 if read is None else read


def bad_counts(report: object, fields: tuple[str, ...]) -> list[str]:
    """The names among ``fields`` (``a.b`` reaches into a nested object) whose value in
    ``report`` is present but not a count."""
    bad = []
    for path in fields:
        value: object = report
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None and read_count(value) is None:
            bad.append(path)
    return bad


def check_usage(usage: Usage, output_bound: int) -> tuple[Usage | None, list[Anomaly]]:
    """(the usage to bill, or None to bill the estimate instead; what was odd about it)."""
    if output_bound and usage.output_tokens > output_bound:
        if usage.output_tokens > ABSURD_FACTOR * output_bound + ABSURD_MARGIN:
            return None, [anomaly("absurd_usage", {"output_tokens": usage.output_tokens,
                                                   "output_bound": output_bound})]  # fmt: skip
        return usage, [anomaly("output_over_bound", {"output_tokens": usage.output_tokens,
                                                     "output_bound": output_bound})]  # fmt: skip
    return usage, []


def unreadable_body(body: bytes, headers: Mapping[str, str]) -> list[Anomaly]:
    """Why a successful answer gave no usable usage: a usage object that is not believable,
    or a body that is not what the endpoint returns (HTML, an SSE stream to a request that did
    not ask for one). Nothing when the answer simply has no usage (some endpoints never do)."""
    content_type = headers.get("Content-Type", "")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        if content_type.startswith(("audio/", "image/")) or (
            content_type.startswith("text/plain") and document is None):  # fmt: skip
            return []  # transcripts as text, speech: bodies that are not JSON by design
        return [anomaly("unexpected_body", f"{content_type or 'no content type'}: "
                        f"{body[:120].decode('utf-8', 'replace')}")]  # fmt: skip
    raw = document.get("usage")
    return [anomaly("unreadable_usage", raw)] if raw is not None else []
