"""Token usage of one request, in the buckets that are priced differently.

The buckets are disjoint so that cost is a plain sum: ``input_tokens`` excludes the cached
prompt tokens (``cache_read_tokens``) and the tokens written to the cache
(``cache_write_tokens``), even where a provider reports them inside its prompt count. Provider
adapters do that subtraction once, so the cost function never has to know provider quirks.
``reasoning_tokens`` is only a breakdown of ``output_tokens`` for metrics; it is never billed
on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request (or a sum of requests); all non-negative ints."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        # A negative count would price as a negative charge and mint money, so refuse it here
        # rather than trusting every adapter's arithmetic.
        for spec in fields(self):
            count = getattr(self, spec.name)
            if isinstance(count, bool) or not isinstance(count, int):
                raise TypeError(f"Usage.{spec.name} must be an int, not {type(count).__name__}")
            if count < 0:
                raise ValueError(f"Usage.{spec.name} must not be negative (got {count})")

    @property
    def total_tokens(self) -> int:
        """Every billed token; reasoning tokens are already inside ``output_tokens``."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )
