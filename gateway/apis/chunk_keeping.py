"""Which OpenAI stream chunks may be kept unparsed, decided on their bytes.

The speed trick behind ``OpenAIStreamTracker``: the text of a stream is only needed when the
stream ends without its usage, so ordinary chunks are kept as bytes and parsed only if asked.
``keepable_prefix`` is the plain, per-chunk rule (the same as the tracker's ``feed``);
``all_keepable`` checks a whole run of chunks with a few C-level counts, and whenever it says
yes, the plain rule keeps every chunk too (tests/unit/test_chunk_keeping.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import repeat

# What an ordinary chunk holds: choices, and no "usage" but, last, "usage":null (feed's rule).
CHOICES, USAGE, USAGE_NULL_END = '"choices":[', '"usage"', '"usage":null}'
B_CHOICES, B_USAGE = CHOICES.encode(), USAGE.encode()
B_USAGE_NULL = b'"usage":null'  # how an inner part (the data without its braces) ends
B_USAGE_NULL_BLOCK_END = B_USAGE_NULL + b"}\n\n"  # how a plain block with one ends


def run_datas(run: bytes) -> list[bytes]:
    """Each chunk's data in a run of whole plain blocks (as ``feed_plain`` keeps them)."""
    return run[6:-2].split(b"\n\ndata: ")


def chunk_datas(kept: list[str | bytes]) -> Iterator[str | bytes]:
    for item in kept:
        if isinstance(item, str):
            yield item
        else:
            yield from run_datas(item)


def all_keepable(run: bytes, start: int, end: int, inners: list[bytes]) -> bool:
    """Whether every chunk in ``inners`` (the blocks of ``run[start:end]``) is one ``feed``
    keeps, checked in C: each has ``"choices":[``, and either none has ``"usage"`` (an upstream
    that ignores ``stream_options``) or each ends with ``"usage":null}``, its only one (stricter
    than feed's rule, which is per chunk: False sends the caller to ``keepable_prefix``).
    ``bytes.find``, not ``in``: ``in`` first tries its argument as an int."""
    usages = run.count(B_USAGE, start, end)
    return (
        usages == 0 or usages == len(inners) == run.count(B_USAGE_NULL_BLOCK_END, start, end)
    ) and -1 not in map(bytes.find, inners, repeat(B_CHOICES))


def keepable_prefix(inners: list[bytes]) -> int:
    """How many chunks at the start of ``inners`` ``feed`` would keep unparsed (given the
    model): each has ``"choices":[``, and no ``"usage"`` or only a last ``"usage":null``."""
    for i, inner in enumerate(inners):
        if inner.find(B_CHOICES) < 0 or inner.count(B_USAGE) != inner.endswith(B_USAGE_NULL):
            return i
    return len(inners)
