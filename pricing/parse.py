"""Parse and validate the pricing YAML into a ``PriceTable`` of exact integer prices.

Every price is converted once, here, from the file's decimal text to integer nanodollars
(per 1M tokens, per request, per image or per audio minute), so nothing downstream ever sees a
decimal or a float. Validation is strict and each problem is one line naming the file, the
model and the field, because a pricing mistake silently bills customers wrongly, while a
refused file is noticed at start-up.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import yaml

from pricing.exact_yaml import DuplicateKeyError, ExactLoader
from pricing.instants import format_instant, parse_instant
from pricing.money import decimal_to_units
from pricing.prices import ModelPrice, PriceTier
from pricing.table import PriceTable

__all__ = ["PricingError", "parse_pricing"]


class PricingError(ValueError):
    """A pricing file that cannot be used.

    The message is one line: ``"<source>: models.<model>.<field>: <problem>"``, or
    ``"<source>: <problem>"`` for problems with the file as a whole.
    """


def parse_pricing(text: str, *, source: str) -> PriceTable:
    """Parse pricing YAML ``text``; ``source`` names it in error messages (usually a path).

    ``version`` is the file's ``version:`` field, else ``"sha256:"`` plus the first 12 hex
    digits of the text's SHA-256, so a changed file always gets a new version.
    """
    document = _load_yaml(text, source)
    schedules, version = _parse_document(document, source)
    if version is None:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        version = f"sha256:{digest[:12]}"
    return PriceTable(
        models={name: prices[0] for name, prices in schedules.items()},
        version=version,
        source=source,
        scheduled={name: prices[1:] for name, prices in schedules.items() if len(prices) > 1},
    )


def _load_yaml(text: str, source: str) -> object:
    try:
        # ExactLoader subclasses SafeLoader: this is safe_load with exact numbers.
        return yaml.load(text, Loader=ExactLoader)
    except DuplicateKeyError as exc:
        raise PricingError(_one_line(f"{source}: {exc.describe(text)}")) from None
    except yaml.MarkedYAMLError as exc:
        where = ""
        if exc.problem_mark is not None:
            where = f" (line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1})"
        problem = exc.problem or exc.context or "malformed document"
        raise PricingError(_one_line(f"{source}: invalid YAML: {problem}{where}")) from None
    except yaml.YAMLError as exc:
        raise PricingError(_one_line(f"{source}: invalid YAML: {exc}")) from None
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        # PyYAML's own constructors raise bare errors on some malformed explicit tags
        # (e.g. `!!timestamp x`); they are still a bad file, not a crash.
        raise PricingError(_one_line(f"{source}: invalid YAML: {exc!r}")) from None


def _one_line(message: str) -> str:
    return " ".join(message.split())


# --- validation ---------------------------------------------------------------------------

_TOKEN_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
_PRICE_UNITS = {
    **dict.fromkeys(_TOKEN_FIELDS, "USD per 1M tokens"),
    "per_request": "USD per request",
    "per_audio_minute": "USD per audio minute",
}
_PRICE_FIELDS = (*_PRICE_UNITS, "per_image")
_CACHE_FIELDS = ("cache_read", "cache_write", "cache_write_1h")
_MODEL_FIELDS = (
    *_PRICE_FIELDS, "max_output_tokens", "tiers", "effective_from", "cache_at_input",
    "hold_output_tokens",
)  # fmt: skip
_TIER_FIELDS = ("above", *_TOKEN_FIELDS)
_TIER_HINT = "{above: 200000, input: 6.00, output: 22.50}"
_TOP_LEVEL_FIELDS = ("models", "version")
_IMAGE_SIZE_HINT = 'an image size like "1024x1024" or "1024x1024/hd"'
_WHEN = "each with effective_from (a date like 2026-12-01), at most one without"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _fail(source: str, path: str, problem: str) -> PricingError:
    return PricingError(_one_line(f"{source}: {path}: {problem}"))


def _show(key: object) -> str:
    """A key as it should appear in a one-line path: plain if it is plain, else quoted."""
    text = key if isinstance(key, str) else str(key)
    if text and text.isprintable() and not any(char.isspace() for char in text):
        return text
    return repr(text)


def _is_plain_name(key: object) -> bool:
    return isinstance(key, str) and _show(key) == key


def _check_fields(
    spec: dict[object, object], allowed: tuple[str, ...], source: str, prefix: str
) -> None:
    for key in spec:
        if key not in allowed:
            raise _fail(
                source,
                f"{prefix}{_show(key)}",
                f"unknown field; expected one of {', '.join(allowed)}",
            )


def _parse_document(
    document: object, source: str
) -> tuple[dict[str, tuple[ModelPrice, ...]], str | None]:
    if not isinstance(document, dict):
        raise PricingError(f"{source}: expected a mapping with a `models` key at the top level")
    _check_fields(document, _TOP_LEVEL_FIELDS, source, "")
    if "models" not in document:
        raise PricingError(f"{source}: missing `models` mapping")
    models = document["models"]
    if not isinstance(models, dict):
        raise _fail(source, "models", "must be a mapping of model name to prices")
    parsed = {}
    for name, spec in models.items():
        if not _is_plain_name(name):
            raise _fail(
                source,
                f"models.{_show(name)}",
                "model name must be a non-empty string without whitespace "
                "(quote it in YAML if it looks like a number)",
            )
        assert isinstance(name, str)
        parsed[name] = _parse_schedule(name, spec, source)
    return parsed, _parse_version(document.get("version"), source)


def _parse_version(value: object, source: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal, date)):
        raise _fail(source, "version", "must be a string or a number")
    version = str(value)
    if not version.strip() or not version.isprintable():
        raise _fail(source, "version", "must be a non-empty single-line string")
    return version


def _parse_schedule(name: str, spec: object, source: str) -> tuple[ModelPrice, ...]:
    """A model's prices in time order: one mapping, or a list of them with ``effective_from``.

    At most one entry may go without ``effective_from`` (the base price, in force until the
    first scheduled one), and no two may start at the same instant, since either would leave
    the price at some instant ambiguous. The list may be in any order.
    """
    path = f"models.{name}"
    if not isinstance(spec, list):
        return (_parse_model(name, spec, source, path),)
    if not spec:
        raise _fail(source, path, f"must be a mapping of price fields, or a list of them {_WHEN}")
    entries = [_parse_model(name, item, source, f"{path}[{i}]") for i, item in enumerate(spec)]
    seen: dict[datetime | None, int] = {}
    for index, entry in enumerate(entries):
        start = entry.effective_from
        if start in seen:
            problem = (
                f"missing; only one price may go without it ({path}[{seen[start]}] is the base)"
                if start is None
                else f"{format_instant(start)} is also when {path}[{seen[start]}] starts; "
                "two prices cannot start at the same instant"
            )
            raise _fail(source, f"{path}[{index}].effective_from", problem)
        seen[start] = index
    return tuple(sorted(entries, key=_start_key))


def _start_key(price: ModelPrice) -> tuple[int, datetime]:
    start = price.effective_from
    return (0, _EPOCH) if start is None else (1, start)


def _parse_model(name: str, spec: object, source: str, path: str) -> ModelPrice:
    if spec is None:
        raise _fail(source, path, "has no price")
    if not isinstance(spec, dict):
        raise _fail(source, path, "must be a mapping of price fields")
    _check_fields(spec, _MODEL_FIELDS, source, f"{path}.")
    if not any(key in spec for key in _PRICE_FIELDS):
        raise _fail(source, path, f"has no price; set one of {', '.join(_PRICE_FIELDS)}")

    def price(key: str) -> int | None:
        if key not in spec:
            return None
        return _parse_price(spec[key], source, f"{path}.{key}", _PRICE_UNITS[key])

    cache_at_input = _parse_cache_at_input(spec, source, path)

    def tokens(key: str) -> int | None:
        return None if key not in spec else _parse_tokens(spec[key], source, f"{path}.{key}")

    per_image = spec.get("per_image")
    base = ModelPrice(
        model=name,
        input=price("input"),
        output=price("output"),
        cache_read=price("cache_read"),
        cache_write=price("cache_write"),
        cache_write_1h=price("cache_write_1h"),
        per_request=price("per_request"),
        per_image=None
        if "per_image" not in spec
        else _parse_per_image(per_image, source, f"{path}.per_image"),
        per_audio_minute=price("per_audio_minute"),
        max_output_tokens=tokens("max_output_tokens"),
        hold_output_tokens=tokens("hold_output_tokens"),
        effective_from=None
        if "effective_from" not in spec
        else _parse_effective_from(spec["effective_from"], source, f"{path}.effective_from"),
        cache_at_input=cache_at_input,
    )
    if "tiers" not in spec:
        return base
    return replace(base, tiers=_parse_tiers(spec["tiers"], base, source, f"{path}.tiers"))


def _parse_cache_at_input(spec: dict[object, object], source: str, path: str) -> bool:
    """``cache_at_input: true`` says cached tokens bill at the input price, on purpose.

    It is how a file tells ``tollgate pricing check`` that an Anthropic model without cache
    prices is not an oversight, so it cannot sit next to a cache price it would contradict.
    """
    value = spec.get("cache_at_input", False)
    if not isinstance(value, bool):
        raise _fail(source, f"{path}.cache_at_input", "must be true or false")
    if value:
        if "input" not in spec:
            raise _fail(source, f"{path}.cache_at_input", "needs an input price to bill at")
        for key in _CACHE_FIELDS:
            if key in spec:
                raise _fail(
                    source,
                    f"{path}.{key}",
                    "contradicts cache_at_input: true (cached tokens bill at the input price); "
                    "drop one of the two",
                )
    return value


def _parse_tiers(value: object, base: ModelPrice, source: str, path: str) -> tuple[PriceTier, ...]:
    """Long-context tiers, lowest ``above`` first as the file must list them.

    A tier must set every token price its model sets: it replaces them all for a long
    request, and a forgotten one would otherwise silently bill at the short-context price.
    """
    if not isinstance(value, list) or not value:
        raise _fail(source, path, f"must be a list of tiers like [{_TIER_HINT}]")
    if not base.is_token_priced:
        raise _fail(source, path, "only token prices have tiers; the model sets no input/output")
    tiers: list[PriceTier] = []
    for index, spec in enumerate(value):
        tier_path = f"{path}[{index}]"
        if not isinstance(spec, dict):
            raise _fail(source, tier_path, f"must be a mapping like {_TIER_HINT}")
        _check_fields(spec, _TIER_FIELDS, source, f"{tier_path}.")
        if "above" not in spec:
            raise _fail(source, f"{tier_path}.above", "missing; the prompt size it applies above")
        above = _parse_above(spec["above"], source, f"{tier_path}.above")
        if tiers and above <= tiers[-1].above:
            raise _fail(
                source,
                f"{tier_path}.above",
                f"must be greater than the previous tier's ({tiers[-1].above}); "
                "list tiers from the lowest",
            )
        prices = {
            key: _parse_price(spec[key], source, f"{tier_path}.{key}", _PRICE_UNITS[key])
            for key in _TOKEN_FIELDS
            if key in spec
        }
        cached = next((key for key in _CACHE_FIELDS if key in prices), None)
        if base.cache_at_input and cached is not None:
            raise _fail(
                source,
                f"{tier_path}.{cached}",
                "contradicts the model's cache_at_input: true (cached tokens bill at the "
                "input price)",
            )
        for key in _TOKEN_FIELDS:
            if key not in prices and getattr(base, key) is not None:
                raise _fail(
                    source,
                    f"{tier_path}.{key}",
                    f"missing; the model sets {key}, so each tier must "
                    "(a tier replaces every token price)",
                )
        tiers.append(PriceTier(above=above, **prices))
    return tuple(tiers)


def _parse_above(value: object, source: str, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _fail(source, path, "must be a positive integer (prompt tokens)")
    return value


def _parse_price(value: object, source: str, path: str, unit: str) -> int:
    """A non-negative exact price in USD, converted to integer nanodollars.

    One rule for what a price may look like: a plain decimal (``0.15``, ``3``) or the same in
    exponent form (``1.5e-7``, ``1e-7``, ``2E+1``), read from the file's text as an exact
    Decimal (see ``pricing.exact_yaml``). Anything else is refused with what it was: quoted
    text, ``true``/``false``, octal or hex, ``.nan``/``.inf``, a negative number.
    """
    if isinstance(value, bool):
        raise _fail(source, path, f"must be a number ({unit}), not {str(value).lower()}")
    if isinstance(value, str):
        raise _fail(
            source,
            path,
            f"must be a number ({unit}) written as a plain decimal like 0.15 or 1.5e-7, "
            f"not the text {value!r}",
        )
    if not isinstance(value, (int, Decimal)):
        raise _fail(source, path, f"must be a number ({unit})")
    amount = Decimal(value)
    if not amount.is_finite():
        raise _fail(source, path, "is not a finite price")
    if amount < 0:
        raise _fail(source, path, "must not be negative")
    try:
        return decimal_to_units(amount)
    except ValueError as exc:
        raise _fail(source, path, str(exc)) from None


def _parse_per_image(value: object, source: str, path: str) -> dict[str, int]:
    if not isinstance(value, dict) or not value:
        raise _fail(source, path, f"must map {_IMAGE_SIZE_HINT} to USD per image")
    prices = {}
    for size, price in value.items():
        if not _is_plain_name(size):
            raise _fail(source, f"{path}.{_show(size)}", f"must be {_IMAGE_SIZE_HINT}")
        assert isinstance(size, str)
        prices[size] = _parse_price(price, source, f"{path}.{size}", "USD per image")
    return prices


def _parse_effective_from(value: object, source: str, path: str) -> datetime:
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise _fail(source, path, str(exc)) from None


def _parse_tokens(value: object, source: str, path: str) -> int:
    """A count of tokens (``max_output_tokens``, ``hold_output_tokens``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _fail(source, path, "must be a positive integer")
    return value
