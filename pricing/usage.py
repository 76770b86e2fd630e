"""What one request used, in the buckets that are priced differently.

The token buckets are disjoint so that cost is a plain sum: ``input_tokens`` excludes the cached
prompt tokens (``cache_read_tokens``) and the tokens written to the cache
(``cache_write_tokens`` for 5-minute writes, ``cache_write_1h_tokens`` for 1-hour writes), even
where a provider reports them inside its prompt count. Provider adapters do that subtraction
once, so the cost function never has to know provider quirks. ``reasoning_tokens`` is only a
breakdown of ``output_tokens`` for metrics; it is never billed on its own.

Images and audio are not tokens: ``images`` counts generated images of one ``image_variant``
(a ``per_image`` key such as ``"1024x1024/hd"``), and ``audio_ms`` is audio duration in whole
milliseconds, fine enough that a per-minute price is billed without rounding the duration.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

_TEXT_FIELDS = frozenset({"image_variant"})


@dataclass(frozen=True, slots=True)
class Usage:
    """Counts of one request (or a sum of requests); every count is a non-negative int.

    New fields go at the end: adapters and tests build ``Usage`` positionally too.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0
    images: int = 0
    image_variant: str = ""
    audio_ms: int = 0

    def __post_init__(self) -> None:
        # A negative count would price as a negative charge and mint money, so refuse it here
        # rather than trusting every adapter's arithmetic. Checked on every request: the fast
        # path is one pass with exact type tests (bool is not int here).
        counts = (self.input_tokens, self.output_tokens, self.cache_read_tokens,
                  self.cache_write_tokens, self.reasoning_tokens, self.cache_write_1h_tokens,
                  self.images, self.audio_ms)  # fmt: skip
        for value in counts:
            if type(value) is not int or value < 0:
                self._refuse()
        if type(self.image_variant) is not str:
            self._refuse()

    def _refuse(self) -> None:
        """Raise the precise error for the first bad field."""
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name in _TEXT_FIELDS:
                if not isinstance(value, str):
                    raise TypeError(f"Usage.{spec.name} must be a str, not {type(value).__name__}")
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Usage.{spec.name} must be an int, not {type(value).__name__}")
            if value < 0:
                raise ValueError(f"Usage.{spec.name} must not be negative (got {value})")

    @property
    def prompt_tokens(self) -> int:
        """The prompt's size as long-context tiers measure it: every input bucket."""
        return (
            self.input_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
            + self.cache_write_1h_tokens
        )

    @property
    def total_tokens(self) -> int:
        """Every billed token; reasoning tokens are already inside ``output_tokens``."""
        return self.prompt_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        if self.image_variant and other.image_variant and self.image_variant != other.image_variant:
            # One Usage is priced at one variant; summing two would bill one at the other's price.
            raise ValueError(
                f"cannot add usages of different image variants "
                f"({self.image_variant!r} and {other.image_variant!r})"
            )
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            images=self.images + other.images,
            image_variant=self.image_variant or other.image_variant,
            audio_ms=self.audio_ms + other.audio_ms,
        )
