"""Convert LiteLLM's price map (``model_prices_and_context_window.json``) to a pricing file.

LiteLLM's map is the price list most gateways start from. It gives USD per token (or per
second, per image) as JSON numbers such as ``1.5e-07``; Tollgate's file wants USD per 1M tokens
(per audio minute, per image). The conversion is exact or it does not happen:

* JSON numbers are read as ``Decimal`` from their own text, never through a binary float;
* each price is scaled by 1,000,000 (tokens) or 60 (seconds to minutes) in a decimal context
  that traps rounding, and must then be a whole number of nanodollars, as the gateway bills;
* a model with a price that fails either test is skipped and listed by name, because rounding
  it would bill customers a price nobody wrote (LiteLLM has a few float artefacts such as
  ``2.0000000000000002e-07``), and dropping just that field would bill that unit for free.
* a ``claude-*`` model without both cache prices is skipped too: ``tollgate pricing check``
  refuses it (``pricing.checks``), and billing its cache tokens at the input price is a choice
  (``cache_at_input: true``) for the operator to write, not for the import to guess.

Only what Tollgate bills is converted: token prices (with cache reads and 5-minute and 1-hour
cache writes), long-context tiers, per-image prices of image models and per-second prices of
transcription models. Everything else (batch and priority prices, audio or image tokens,
characters, pixels, queries) is left out, and the file's header says so.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal, Inexact, Rounded

from pricing.checks import claude_named
from pricing.money import decimal_to_units
from pricing.parse import PricingError

__all__ = ["LitellmImport", "convert_litellm"]

# LiteLLM's token price keys, by the Tollgate field they become.
TOKEN_KEYS = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cache_read": "cache_read_input_token_cost",
    "cache_write": "cache_creation_input_token_cost",
    "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
}
_TOKEN_FIELD = {key: ours for ours, key in TOKEN_KEYS.items()}
# "<token key>_above_200k_tokens": the long-context price above 200,000 prompt tokens.
_TIER_KEY = re.compile(
    rf"(?P<key>{'|'.join(TOKEN_KEYS.values())})_above_(?P<thousands>\d+)k_tokens"
)
# Endpoints Tollgate serves; LiteLLM's default mode is chat.
SERVED_MODES = frozenset(
    {"chat", "completion", "responses", "embedding", "image_generation", "audio_transcription"}
)
# "hd/1024-x-1792/dall-e-3", "fal_ai/low/1024-x-1024/openai/gpt-image-2": the size in the name.
_SIZE_IN_NAME = re.compile(
    r"(?:^|/)(?:(?P<quality>standard|hd|low|medium|high)/)?(?P<width>\d+)-x-(?P<height>\d+)(?:/|$)"
)
ASSUMED_IMAGE_SIZE = "1024x1024"
_EXACT = Context(prec=100, traps=[Inexact, Rounded])
_TOKENS_PER_PRICE = 1_000_000
_SECONDS_PER_PRICE = 60

_HEADER = """\
# Tollgate prices converted from LiteLLM's model price map by `tollgate pricing import-litellm`.
# Source: {source}
# {converted} model(s) converted, {skipped} skipped{reasons}
# USD per 1M tokens (LiteLLM's USD per token x 1,000,000), per image, or per audio minute
# (LiteLLM's USD per second x 60), all converted exactly: nothing was rounded.
# Not converted: batch, priority and flex prices; audio, image and video token prices; prices
# per character, pixel, query or page; reasoning-token prices (reasoning bills as output).
"""


@dataclass(frozen=True)
class LitellmImport:
    """A converted map: ``text`` is the pricing YAML; ``skipped`` counts models by reason."""

    text: str
    converted: int
    skipped: Mapping[str, int]

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


@dataclass
class _Model:
    name: str
    prices: dict[str, Decimal] = field(default_factory=dict)
    tiers: dict[int, dict[str, Decimal]] = field(default_factory=dict)
    per_image: dict[str, Decimal] = field(default_factory=dict)
    max_output_tokens: int | None = None
    notes: list[str] = field(default_factory=list)


class _Skip(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def convert_litellm(text: str, *, source: str) -> LitellmImport:
    """Convert the JSON ``text`` of LiteLLM's price map; ``source`` is named in the header.

    Raises ``PricingError`` (one line) when the text is not a JSON object of models.
    """
    try:
        data = json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal)
    except json.JSONDecodeError as exc:
        raise PricingError(f"{source}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PricingError(f"{source}: expected a JSON object mapping model names to prices")
    models: list[_Model] = []
    skipped: Counter[str] = Counter()
    details: list[str] = []
    for name in sorted(data):
        try:
            models.append(_convert(name, _resolve_alias(name, data), data))
        except _Skip as skip:
            skipped[skip.reason] += 1
            if skip.detail:
                details.append(f"{name}: {skip.detail}")
    return LitellmImport(
        text=_render(models, skipped, details, source),
        converted=len(models),
        skipped=dict(skipped),
    )


def _resolve_alias(name: str, data: Mapping[str, object]) -> object:
    """An ``alias_of`` entry takes its target's fields (its own win), following chains."""
    spec = data[name]
    seen = {name}
    while isinstance(spec, dict) and isinstance(spec.get("alias_of"), str):
        target = spec["alias_of"]
        target_spec = data.get(target)
        if target in seen or not isinstance(target_spec, dict):
            break
        seen.add(target)
        spec = {**target_spec, **{k: v for k, v in spec.items() if k != "alias_of"}}
    return spec


def _convert(name: str, spec: object, data: Mapping[str, object]) -> _Model:
    if name == "sample_spec":
        raise _Skip("sample_spec (LiteLLM's description of its fields)")
    if not isinstance(spec, dict):
        raise _Skip("not a JSON object")
    mode = spec.get("mode", "chat")
    if mode not in SERVED_MODES:
        raise _Skip(f"mode {mode}" if isinstance(mode, str) else "no usable mode")
    if "*" in name or "?" in name or not name.isprintable() or any(c.isspace() for c in name):
        raise _Skip("name with glob characters or whitespace")
    model = _Model(name=name)
    alias = data[name]
    if isinstance(alias, dict) and isinstance(alias.get("alias_of"), str):
        model.notes.append(f"LiteLLM: alias of {alias['alias_of']}")
    for ours, key in TOKEN_KEYS.items():
        _put(model.prices, ours, spec, key, _TOKENS_PER_PRICE)
    for key in sorted(spec):
        match = _TIER_KEY.fullmatch(key)
        if match:
            tier = model.tiers.setdefault(int(match["thousands"]) * 1000, {})
            _put(tier, _TOKEN_FIELD[match["key"]], spec, key, _TOKENS_PER_PRICE)
    if mode == "image_generation":
        _convert_image_price(model, spec)
    if mode == "audio_transcription":
        _put(model.prices, "per_audio_minute", spec, "input_cost_per_second", _SECONDS_PER_PRICE)
    model.max_output_tokens = _positive_int(spec.get("max_output_tokens"))
    _complete_tiers(model)
    every_price = [*model.prices.values(), *model.per_image.values()]
    if not any(every_price):
        # A zero next to a price per pixel means "priced another way", not free.
        if "input_cost_per_pixel" in spec or "output_cost_per_pixel" in spec:
            raise _Skip("only per-pixel image prices")
        raise _Skip("every price is 0" if every_price else "no price in a unit Tollgate bills")
    _require_cache_prices(model)
    return model


def _require_cache_prices(model: _Model) -> None:
    """A ``claude-*`` model must come with both cache prices, or ``tollgate pricing check``
    would refuse the file (``pricing.checks.missing_cache_prices``); whether its cache tokens
    bill at the input price is the operator's call (``cache_at_input: true``), not a guess."""
    prices = model.prices
    token_priced = "input" in prices or "output" in prices
    both_cache_prices = "cache_read" in prices and "cache_write" in prices
    if claude_named(model.name) and token_priced and not both_cache_prices:
        raise _Skip("an Anthropic model without cache_read and cache_write prices")


def _put(
    into: dict[str, Decimal], ours: str, spec: Mapping[str, object], key: str, factor: int
) -> None:
    """Set ``into[ours]`` to LiteLLM's ``spec[key]`` times ``factor``, exactly, if usable."""
    value = spec.get(key)
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        return  # absent, or not a price (LiteLLM's sample_spec has text in places)
    try:
        scaled = _EXACT.multiply(value, Decimal(factor))
        decimal_to_units(scaled)
    except (Inexact, Rounded, ValueError):
        raise _Skip(
            "a price that is not a whole number of nanodollars",
            f"{key} {value} (x {factor:,})",
        ) from None
    into[ours] = scaled


def _convert_image_price(model: _Model, spec: Mapping[str, object]) -> None:
    """Price per generated image, for the size in the model's name or an assumed one.

    LiteLLM's ``output_cost_per_image`` (else ``input_cost_per_image``, which some image
    models use for the same thing) is one price for any size. Tollgate prices each size, and
    refuses sizes it has no price for, so the price is set for the size that LiteLLM's name
    spells out (``hd/1024-x-1792/dall-e-3``), else for 1024x1024 only; the comment says which.
    """
    key = "output_cost_per_image" if "output_cost_per_image" in spec else "input_cost_per_image"
    found: dict[str, Decimal] = {}
    _put(found, "price", spec, key, 1)
    pixels = [k for k in ("input_cost_per_pixel", "output_cost_per_pixel") if k in spec]
    if pixels:
        model.notes.append(f"LiteLLM's {' and '.join(pixels)} not converted (price per pixel)")
    if "price" not in found:
        return
    size = _SIZE_IN_NAME.search(model.name)
    if size is None:
        variant = ASSUMED_IMAGE_SIZE
        model.notes.append(
            f"per_image: LiteLLM's {key} is for any size; assumed {variant} only "
            "(other sizes are refused until priced)"
        )
    else:
        variant = f"{size['width']}x{size['height']}"
        if size["quality"] and size["quality"] != "standard":
            variant += f"/{size['quality']}"
        model.notes.append(f"per_image: {key} for {variant}, the size in LiteLLM's name")
    model.per_image[variant] = found["price"]


def _complete_tiers(model: _Model) -> None:
    """A Tollgate tier must set every token price its model sets: fill gaps from the base."""
    if not model.tiers:
        return
    if "input" not in model.prices and "output" not in model.prices:
        model.notes.append("LiteLLM's long-context prices not converted (no input/output price)")
        model.tiers.clear()
        return
    for above, tier in sorted(model.tiers.items()):
        missing = [ours for ours in TOKEN_KEYS if ours in model.prices and ours not in tier]
        for ours in missing:
            tier[ours] = model.prices[ours]
        if missing:
            model.notes.append(
                f"above {above}: {', '.join(missing)} not in LiteLLM; filled from the base price"
            )


def _positive_int(value: object) -> int | None:
    if isinstance(value, Decimal) and value.is_finite() and value > 0 and value == int(value):
        return int(value)
    return None


# --- YAML -----------------------------------------------------------------------------------


def _render(models: list[_Model], skipped: Counter[str], details: list[str], source: str) -> str:
    reasons = "".join(f"\n#   {count}: {reason}" for reason, count in skipped.most_common())
    lines = [
        _HEADER.format(
            source=" ".join(source.split()),
            converted=len(models),
            skipped=sum(skipped.values()),
            reasons=f":{reasons}" if reasons else ".",
        ).rstrip("\n")
    ]
    if details:
        lines.append("# Skipped because a price is finer than a nanodollar (set them by hand):")
        lines += [f"#   {detail}" for detail in details]
    lines.append("models:" if models else "models: {}")
    for model in models:
        lines += [f"  # {note}" for note in model.notes]
        lines.append(f"  {_quote(model.name)}: {{{_render_fields(model)}}}")
    return "\n".join(lines) + "\n"


def _render_fields(model: _Model) -> str:
    parts = [f"{ours}: {_number(value)}" for ours, value in _ordered(model.prices)]
    if model.per_image:
        sizes = ", ".join(f"{_quote(size)}: {_number(p)}" for size, p in model.per_image.items())
        parts.append(f"per_image: {{{sizes}}}")
    if model.max_output_tokens is not None:
        parts.append(f"max_output_tokens: {model.max_output_tokens}")
    if model.tiers:
        tiers = []
        for above, prices in sorted(model.tiers.items()):
            fields = ", ".join(f"{ours}: {_number(value)}" for ours, value in _ordered(prices))
            tiers.append(f"{{above: {above}, {fields}}}")
        parts.append(f"tiers: [{', '.join(tiers)}]")
    return ", ".join(parts)


def _ordered(prices: Mapping[str, Decimal]) -> list[tuple[str, Decimal]]:
    order = [*TOKEN_KEYS, "per_audio_minute"]
    return sorted(prices.items(), key=lambda item: order.index(item[0]))


def _number(value: Decimal) -> str:
    """``0.15``, ``3``, ``0``: plain decimal text, no exponent, no trailing zeros."""
    return format(_EXACT.normalize(value), "f") if value else "0"


def _quote(text: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar, whatever the name holds.
    return json.dumps(text)
