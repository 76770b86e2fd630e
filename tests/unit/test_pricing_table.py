"""parse_pricing / load_pricing / PriceTable.lookup: exact prices and one-line errors."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from gateway.prices.loading import load_pricing
from pricing import ModelPrice, PriceTable, PricingError, parse_pricing
from tests.support.pricing_errors import pricing_error

CONTRACT_EXAMPLE = """\
models:
  gpt-4o-mini:      {input: 0.15, output: 0.60, cache_read: 0.075}
  claude-sonnet-4-5: {input: 3.00, output: 15.00, cache_read: 0.30, cache_write: 3.75}
  dall-e-3:         {per_image: {"1024x1024": 0.04, "1024x1024/hd": 0.08}}
  whisper-1:        {per_audio_minute: 0.006}
  some-flat-model:  {per_request: 0.002}
"""


def _table(models: str, *, version: str | None = None) -> PriceTable:
    head = f"version: {version}\n" if version is not None else ""
    return parse_pricing(f"{head}models:\n{models}", source="p.yaml")


def test_contract_example_parses_to_exact_integers() -> None:
    table = parse_pricing(CONTRACT_EXAMPLE, source="config/pricing.yaml")
    assert table.source == "config/pricing.yaml"
    assert table.names() == [
        "claude-sonnet-4-5",
        "dall-e-3",
        "gpt-4o-mini",
        "some-flat-model",
        "whisper-1",
    ]
    assert table.models["gpt-4o-mini"] == ModelPrice(
        model="gpt-4o-mini", input=150_000_000, output=600_000_000, cache_read=75_000_000
    )
    assert table.models["claude-sonnet-4-5"] == ModelPrice(
        model="claude-sonnet-4-5",
        input=3_000_000_000,
        output=15_000_000_000,
        cache_read=300_000_000,
        cache_write=3_750_000_000,
    )
    assert table.models["dall-e-3"].per_image == {
        "1024x1024": 40_000_000,
        "1024x1024/hd": 80_000_000,
    }
    assert table.models["whisper-1"].per_audio_minute == 6_000_000
    assert table.models["some-flat-model"].per_request == 2_000_000
    assert table.models["gpt-4o-mini"].is_token_priced
    assert not table.models["dall-e-3"].is_token_priced


def test_yaml_floats_never_leak() -> None:
    table = _table(
        "  m: {input: 0.1, output: 0.2, cache_read: 1_000.5, cache_write: 3,"
        " per_request: 0.000000001, per_audio_minute: 1.5e+2, max_output_tokens: 16384}\n"
        "  img: {per_image: {512x512: 0.3}}\n"
    )
    price = table.models["m"]
    values = [price.input, price.output, price.cache_read, price.cache_write, price.per_request]
    values += [price.per_audio_minute, price.max_output_tokens]
    assert all(type(value) is int for value in values)
    assert values == [
        100_000_000,
        200_000_000,
        1_000_500_000_000,
        3_000_000_000,
        1,
        150_000_000_000,
        16384,
    ]
    per_image = table.models["img"].per_image
    assert per_image is not None
    assert type(per_image["512x512"]) is int


def test_global_safe_loader_is_untouched() -> None:
    _table("  m: {input: 0.1}\n")
    assert type(yaml.safe_load("x: 0.1")["x"]) is float


def test_zero_price_is_a_price() -> None:
    assert _table("  free: {input: 0, output: 0.0}\n").models["free"].input == 0


def test_cache_prices_without_input_are_fine() -> None:
    price = _table("  m: {cache_read: 0.5}\n").models["m"]
    assert (price.input, price.cache_read, price.is_token_priced) == (None, 500_000_000, False)


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (
            "  m: {input: 1, effective_form: 2025-01-01}\n",
            "m.effective_form: unknown field; expected one of input, output, cache_read, "
            "cache_write, cache_write_1h, per_request, per_audio_minute, per_image, "
            "max_output_tokens, tiers, effective_from",
        ),
        ('  m: {input: "0.15"}\n', "m.input: must be a number (USD per 1M"),
        ("  m: {output: true}\n", "m.output: must be a number (USD per 1M"),
        ("  m: {output: [1]}\n", "m.output: must be a number (USD per 1M"),
        ("  m: {output: null}\n", "m.output: must be a number (USD per 1M"),
        ("  m: {input: 010}\n", "m.input: must be a number (USD per 1M"),
        ("  m: {input: 0x10}\n", "m.input: must be a number (USD per 1M"),
        ("  m: {input: 1:30.5}\n", "m.input: must be a number (USD per 1M"),
        ("  m: {input: '1e3'}\n", "m.input: must be a number (USD per 1M"),  # quoted: text
        ("  m: {per_request: abc}\n", "m.per_request: must be a number (USD per request)"),
        ("  m: {input: -0.5}\n", "m.input: must not be negative"),
        ("  m: {input: -1}\n", "m.input: must not be negative"),
        ("  m: {input: 1, cache_write_1h: -6}\n", "m.cache_write_1h: must not be negative"),
        (
            "  m: {input: 1, cache_write_1h: 6.00 USD}\n",
            "m.cache_write_1h: must be a number (USD per 1M tokens)",
        ),
        ("  m: {input: 1, cache_write_1hr: 6}\n", "m.cache_write_1hr: unknown field;"),
        ("  m: {input: 1, cache_write_5m: 6}\n", "m.cache_write_5m: unknown field;"),
        ("  m: {per_images: {1024x1024: 1}}\n", "m.per_images: unknown field;"),
        ("  m: {per_audio_second: 0.0001}\n", "m.per_audio_second: unknown field;"),
        ("  m: {per_audio_minute: -0.006}\n", "m.per_audio_minute: must not be negative"),
        (
            "  m: {per_audio_minute: six}\n",
            "m.per_audio_minute: must be a number (USD per audio minute)",
        ),
        ("  m: {per_image: {1024x1024/hd: .inf}}\n", "m.per_image.1024x1024/hd: is not a finite"),
        ("  m: {input: .inf}\n", "m.input: is not a finite price"),
        ("  m: {input: -.Inf}\n", "m.input: is not a finite price"),
        ("  m: {input: .NaN}\n", "m.input: is not a finite price"),
        ("  m: {input: 0.0000000001}\n", "m.input: has more than 9 decimal places"),
        ("  m: {per_request: 1.0000000005}\n", "m.per_request: has more than 9 decimal places"),
        ("  m: {}\n", "m: has no price; set one of input, output,"),
        ("  m:\n", "m: has no price"),
        ("  m: {max_output_tokens: 100}\n", "m: has no price"),
        ("  m: 0.15\n", "m: must be a mapping of price fields"),
        ("  m: {input: 1, max_output_tokens: 0}\n", "m.max_output_tokens: must be a positive"),
        ("  m: {input: 1, max_output_tokens: 1.5}\n", "m.max_output_tokens: must be a positive"),
        ("  m: {input: 1, max_output_tokens: true}\n", "m.max_output_tokens: must be a positive"),
        ("  m: {per_image: {}}\n", 'm.per_image: must map an image size like "1024x1024"'),
        ("  m: {per_image: 0.04}\n", "m.per_image: must map an image size"),
        (
            "  m: {per_image: {1024: 0.04}}\n",
            'm.per_image.1024: must be an image size like "1024x1024"',
        ),
        ("  m: {per_image: {1024x1024: -1}}\n", "m.per_image.1024x1024: must not be negative"),
        (
            "  m: {per_image: {1024x1024: x}}\n",
            "m.per_image.1024x1024: must be a number (USD per image)",
        ),
        ("  3.5: {input: 1}\n", "3.5: model name must be a non-empty string"),
        ('  "": {input: 1}\n', "'': model name must be a non-empty string"),
        ('  "a b": {input: 1}\n', "'a b': model name must be a non-empty string"),
        ('  "a\\nb": {input: 1}\n', "'a\\nb': model name must be a non-empty string"),
        ('  m: {"in\\nput": 1}\n', "m.'in\\nput': unknown field;"),
    ],
)
def test_model_errors_are_one_line_naming_source_model_and_field(models: str, message: str) -> None:
    assert pricing_error(f"models:\n{models}").startswith(f"p.yaml: models.{message}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a mapping with a `models` key at the top level"),
        ("- 1\n", "expected a mapping with a `models` key at the top level"),
        ("version: 1\n", "missing `models` mapping"),
        ("models:\n", "models: must be a mapping of model name to prices"),
        ("models: [a]\n", "models: must be a mapping of model name to prices"),
        ("model:\n  m: {input: 1}\n", "model: unknown field; expected one of models, version"),
        ("models: {m: {input: 1}}\nversion: [1]\n", "version: must be a string or a number"),
        ("models: {m: {input: 1}}\nversion: ''\n", "version: must be a non-empty single-line"),
        ("models: {m: {input: 1}\n", "invalid YAML: expected ',' or '}', but got '<stream end>'"),
        ("models:\n  m: {input: 1}\n bad\n", "invalid YAML: "),
        ("models: !!timestamp x\n", "invalid YAML: "),
        (
            "models: !!python/object:os.system x\n",
            "invalid YAML: could not determine a constructor",
        ),
        ("models: {m: {input: !!float abc}}\n", "models.m.input: must be a number"),
        ("models: {m: {input: !!float ''}}\n", "models.m.input: must be a number"),
        ("models: {m: {input: !!int abc}}\n", "models.m.input: must be a number"),
    ],
)
def test_file_errors_are_one_line(text: str, message: str) -> None:
    assert pricing_error(text).startswith(f"p.yaml: {message}")


def test_yaml_error_names_line_and_column() -> None:
    message = pricing_error("models:\n  m: {input: 1\n")
    assert message.startswith("p.yaml: invalid YAML: ")
    assert "(line 3, column 1)" in message


def test_version_from_field() -> None:
    assert _table("  m: {input: 1}\n", version='"2025-06"').version == "2025-06"
    assert _table("  m: {input: 1}\n", version="2025-06-01").version == "2025-06-01"
    assert _table("  m: {input: 1}\n", version="7").version == "7"
    assert _table("  m: {input: 1}\n", version="1.10").version == "1.10"


def test_version_from_hash_changes_with_the_text() -> None:
    text = "models:\n  m: {input: 1}\n"
    expected = "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12]
    assert parse_pricing(text, source="a").version == expected
    assert parse_pricing(text + "\n", source="a").version != expected


def test_empty_models_mapping_is_an_empty_table() -> None:
    table = parse_pricing("models: {}\n", source="p.yaml")
    assert table.names() == []
    assert table.lookup("gpt-4o") is None


def test_lookup_exact_then_longest_glob() -> None:
    table = _table(
        '  "gpt-*": {input: 1}\n'
        '  "gpt-4o*": {input: 2}\n'
        '  "gpt-4o-mini*": {input: 3}\n'
        "  gpt-4o-mini: {input: 4}\n"
        '  "o?-mini": {input: 5}\n'
        '  "*": {per_request: 1}\n'
    )

    def price_of(model: str) -> str | None:
        found = table.lookup(model)
        return None if found is None else found.model

    assert price_of("gpt-4o-mini") == "gpt-4o-mini"
    assert price_of("gpt-4o-mini-2024-07-18") == "gpt-4o-mini*"
    assert price_of("gpt-4o-2024-08-06") == "gpt-4o*"
    assert price_of("gpt-4.1") == "gpt-*"
    assert price_of("o3-mini") == "o?-mini"
    assert price_of("GPT-4o") == "*"  # case-sensitive: only the catch-all matches


def test_lookup_returns_none_without_match() -> None:
    table = _table('  "gpt-*": {input: 1}\n  claude-3: {input: 1}\n')
    assert table.lookup("claude-3-opus") is None
    assert table.lookup("GPT-4") is None
    assert table.lookup("") is None


def test_glob_ties_are_deterministic() -> None:
    # Same number of literal characters: the longer pattern, then the alphabetically first.
    table = _table('  "a*c": {input: 1}\n  "a?c*": {input: 2}\n  "*ac": {input: 3}\n')
    found = table.lookup("abc")
    assert found is not None
    assert found.model == "a?c*"
    found = table.lookup("ac")
    assert found is not None
    assert found.model == "*ac"


def test_table_models_are_read_only() -> None:
    models = {"m": ModelPrice(model="m", input=1)}
    table = PriceTable(models=models, version="v", source="s")
    models["n"] = ModelPrice(model="n", input=2)
    assert table.names() == ["m"]
    with pytest.raises(TypeError):
        table.models["n"] = ModelPrice(model="n", input=2)  # type: ignore[index]


def test_load_pricing_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "pricing.yaml"
    path.write_text(CONTRACT_EXAMPLE, encoding="utf-8")
    table = load_pricing(path)
    assert table.source == str(path)
    assert table == parse_pricing(CONTRACT_EXAMPLE, source=str(path))
    price = table.lookup("gpt-4o-mini")
    assert price is not None
    assert price.input == 150_000_000


def test_load_pricing_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(PricingError) as caught:
        load_pricing(str(path))
    assert str(caught.value) == f"{path}: cannot read: No such file or directory"


def test_load_pricing_errors_name_the_path(tmp_path: Path) -> None:
    path = tmp_path / "pricing.yaml"
    path.write_text("models:\n  m: {input: -1}\n", encoding="utf-8")
    with pytest.raises(PricingError, match=r"pricing\.yaml: models\.m\.input: must not be neg"):
        load_pricing(path)
    path.write_bytes(b"models:\n  m: {input: \xff}\n")
    with pytest.raises(PricingError, match=r"pricing\.yaml: cannot read: not UTF-8"):
        load_pricing(path)


def test_pricing_error_is_a_value_error() -> None:
    assert issubclass(PricingError, ValueError)


def test_decimal_text_is_kept_exactly() -> None:
    # 0.1 + 0.2 style drift would show up here if a float were involved anywhere.
    table = _table("  m: {input: 0.3, output: 0.1}\n")
    price = table.models["m"]
    assert price.input == int(Decimal("0.3") * 10**9)
    assert price.output == 100_000_000
