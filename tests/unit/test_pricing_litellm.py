"""``convert_litellm``: LiteLLM's price map to Tollgate's pricing YAML, exactly.

``tests/data/litellm_excerpt.json`` holds real entries copied verbatim (number text and all)
from the map that LiteLLM ships in its wheel (``model_prices_and_context_window_backup.json``).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from pricing import PriceTable, PriceTier, PricingError, parse_pricing
from pricing.litellm import TOKEN_KEYS, LitellmImport, convert_litellm

EXCERPT = Path(__file__).resolve().parents[1] / "data" / "litellm_excerpt.json"
B = 1_000_000_000  # nanodollars per USD


@pytest.fixture(scope="module")
def excerpt() -> LitellmImport:
    return convert_litellm(EXCERPT.read_text(encoding="utf-8"), source="litellm_excerpt.json")


@pytest.fixture(scope="module")
def table(excerpt: LitellmImport) -> PriceTable:
    return parse_pricing(excerpt.text, source="converted.yaml")


def _convert(models: dict[str, object]) -> LitellmImport:
    return convert_litellm(json.dumps(models), source="x.json")


def _line(result: LitellmImport, name: str) -> str:
    prefix = f"  {json.dumps(name)}: "
    return next(line for line in result.text.splitlines() if line.startswith(prefix))


def test_excerpt_counts(excerpt: LitellmImport, table: PriceTable) -> None:
    assert excerpt.converted == 14 == len(table.models)
    assert excerpt.skipped == {
        "sample_spec (LiteLLM's description of its fields)": 1,
        "mode audio_speech": 1,  # tts-1: priced per character
        "a price that is not a whole number of nanodollars": 1,
        "every price is 0": 1,  # doubao-embedding
        "only per-pixel image prices": 1,  # azure/hd/1024-x-1024/dall-e-3
        "name with glob characters or whitespace": 1,  # bedrock/*/1-month-commitment/...
    }
    assert excerpt.skipped_total == 6
    head = excerpt.text.splitlines()[:3]
    assert head[1] == "# Source: litellm_excerpt.json"
    assert head[2] == "# 14 model(s) converted, 6 skipped:"
    assert "#   1: mode audio_speech" in excerpt.text


def test_gpt_4o_mini_is_exact(excerpt: LitellmImport, table: PriceTable) -> None:
    # 1.5e-07 USD per token is 0.15 per 1M; 7.5e-08 is 0.075; 6e-07 is 0.6.
    assert _line(excerpt, "gpt-4o-mini") == (
        '  "gpt-4o-mini": {input: 0.15, output: 0.6, cache_read: 0.075, max_output_tokens: 16384}'
    )
    price = table.models["gpt-4o-mini"]
    assert (price.input, price.output, price.cache_read) == (150_000_000, 600_000_000, 75_000_000)
    assert price.max_output_tokens == 16384
    assert price.cache_write is None


def test_claude_cache_writes_and_long_context_tier(table: PriceTable) -> None:
    sonnet = table.models["claude-sonnet-4-5"]
    assert (sonnet.cache_read, sonnet.cache_write, sonnet.cache_write_1h) == (
        300_000_000,
        3_750_000_000,
        6 * B,
    )
    assert sonnet.tiers == ()
    vertex = table.models["vertex_ai/claude-sonnet-4-5"]
    assert vertex.input == 3 * B
    assert vertex.tiers == (
        PriceTier(
            above=200_000,
            input=6 * B,
            output=22_500_000_000,
            cache_read=600_000_000,
            cache_write=7_500_000_000,
            cache_write_1h=12 * B,  # cache_creation_input_token_cost_above_1hr_above_200k_tokens
        ),
    )
    assert table.models["gpt-5.4"].tiers[0].above == 272_000


def test_missing_tier_prices_are_filled_from_the_base_and_said(
    excerpt: LitellmImport, table: PriceTable
) -> None:
    grok = table.models["perplexity/xai/grok-4.20-reasoning"]
    assert grok.cache_read == 200_000_000
    assert grok.tiers[0].cache_read == 200_000_000  # not in LiteLLM: the base price
    assert grok.tiers[0].input == 2_500_000_000
    lines = excerpt.text.splitlines()
    index = lines.index(_line(excerpt, "perplexity/xai/grok-4.20-reasoning"))
    assert lines[index - 1] == (
        "  # above 200000: cache_read not in LiteLLM; filled from the base price"
    )


def test_embedding_audio_and_images(excerpt: LitellmImport, table: PriceTable) -> None:
    embedding = table.models["text-embedding-3-small"]
    assert (embedding.input, embedding.output) == (20_000_000, 0)
    # whisper-1: 0.0001 USD per second x 60 = 0.006 per minute.
    assert table.models["whisper-1"].per_audio_minute == 6_000_000
    assert table.models["gpt-4o-transcribe"].per_audio_minute == 6_000_000
    assert table.models["aiml/dall-e-3"].per_image == {"1024x1024": 52_000_000}
    assert "assumed 1024x1024 only" in excerpt.text
    # The size and quality spelt out in LiteLLM's name.
    assert table.models["fal_ai/low/1024-x-1024/openai/gpt-image-2"].per_image == {
        "1024x1024/low": 6_000_000
    }
    assert table.models["low/1024-x-1024/gpt-image-1.5"].per_image == {"1024x1024/low": 9_000_000}


def test_alias_takes_its_targets_prices(excerpt: LitellmImport, table: PriceTable) -> None:
    alias, target = table.models["claude-opus-latest"], table.models["claude-opus-5-5"]
    assert alias.input == target.input == 4 * B
    assert alias.cache_write_1h == target.cache_write_1h == 8 * B
    assert "  # LiteLLM: alias of claude-opus-5-5" in excerpt.text.splitlines()


def test_skipped_models_are_absent_and_inexact_ones_listed(
    excerpt: LitellmImport, table: PriceTable
) -> None:
    for name in ("sample_spec", "tts-1", "doubao-embedding", "azure/hd/1024-x-1024/dall-e-3"):
        assert name not in table.models
    assert "novita/stepfun/step-3.7-flash" not in table.models
    assert (
        "#   novita/stepfun/step-3.7-flash: input_cost_per_token 2.0000000000000002E-7 "
        "(x 1,000,000)" in excerpt.text.splitlines()
    )


def test_every_converted_token_price_is_litellm_times_a_million(table: PriceTable) -> None:
    source = json.loads(EXCERPT.read_text(encoding="utf-8"), parse_float=Decimal)
    checked = 0
    for name, price in table.models.items():
        spec = source[name]
        spec = {**source.get(spec.get("alias_of", ""), {}), **spec}
        for ours, key in TOKEN_KEYS.items():
            units = getattr(price, ours)
            if key in spec:
                assert Decimal(units) == spec[key] * 10**15, (name, ours)
                checked += 1
            else:
                assert units is None, (name, ours)
    assert checked >= 30


def test_values_a_float_would_get_wrong_are_exact() -> None:
    # As floats, 3.3e-07 * 1e6 is 0.32999999999999996 and 1.1e-07 * 1e6 is 0.10999999999999999.
    result = _convert({"m": {"input_cost_per_token": 3.3e-07, "output_cost_per_token": 1.1e-07}})
    assert _line(result, "m") == '  "m": {input: 0.33, output: 0.11}'


def test_numbers_are_plain_decimals_without_exponent() -> None:
    text = '{"m": {"input_cost_per_token": 1E-5, "output_cost_per_token": 0.000150000}}'
    result = convert_litellm(text, source="x.json")
    assert _line(result, "m") == '  "m": {input: 10, output: 150}'


def test_a_price_finer_than_a_nanodollar_skips_the_whole_model() -> None:
    result = _convert(
        {
            "fine": {"input_cost_per_token": 1e-16, "output_cost_per_token": 1e-06},
            "ok": {"input_cost_per_token": 1e-15},
        }
    )
    table = parse_pricing(result.text, source="y")
    assert table.names() == ["ok"]
    assert table.models["ok"].input == 1  # 1e-15 per token: one nanodollar per 1M tokens
    assert result.skipped == {"a price that is not a whole number of nanodollars": 1}


def test_several_thresholds_become_sorted_tiers() -> None:
    result = _convert(
        {
            "m": {
                "input_cost_per_token": 1e-06,
                "output_cost_per_token": 2e-06,
                "input_cost_per_token_above_256k_tokens": 3e-06,
                "output_cost_per_token_above_256k_tokens": 4e-06,
                "input_cost_per_token_above_128k_tokens": 2e-06,
                "input_cost_per_token_above_128k_tokens_batches": 1e-06,
            }
        }
    )
    tiers = parse_pricing(result.text, source="y").models["m"].tiers
    assert [(t.above, t.input, t.output) for t in tiers] == [
        (128_000, 2 * B, 2 * B),  # output not given above 128k: the base price, said so
        (256_000, 3 * B, 4 * B),
    ]
    assert "# above 128000: output not in LiteLLM; filled from the base price" in result.text


def test_what_is_skipped_and_why() -> None:
    result = _convert(
        {
            "speech": {"mode": "audio_speech", "input_cost_per_character": 1.5e-05},
            "free": {"mode": "chat", "input_cost_per_token": 0, "output_cost_per_token": 0.0},
            "unpriced": {"mode": "chat", "max_output_tokens": 100},
            "pixels": {"mode": "image_generation", "input_cost_per_pixel": 4e-08},
            "has space": {"input_cost_per_token": 1e-06},
            "list": [1, 2],
        }
    )
    assert result.converted == 0
    assert result.skipped == {
        "mode audio_speech": 1,
        "every price is 0": 1,
        "no price in a unit Tollgate bills": 1,
        "only per-pixel image prices": 1,
        "name with glob characters or whitespace": 1,
        "not a JSON object": 1,
    }
    assert parse_pricing(result.text, source="y").models == {}


def test_unusable_fields_are_ignored() -> None:
    result = _convert(
        {
            "m": {
                "input_cost_per_token": 1e-06,
                "output_cost_per_token": "free",  # text, as in sample_spec
                "cache_read_input_token_cost": -1e-07,
                "output_cost_per_reasoning_token": 9e-06,  # reasoning bills as output
                "max_output_tokens": 0,
                "input_cost_per_second": 0.001,  # a chat model: not billed per minute
            }
        }
    )
    assert _line(result, "m") == '  "m": {input: 1}'


def test_non_finite_numbers_never_become_floats() -> None:
    result = convert_litellm(
        '{"m": {"input_cost_per_token": NaN, "output_cost_per_token": 1e-06}}', source="x"
    )
    assert _line(result, "m") == '  "m": {output: 1}'


def test_transcription_per_second_becomes_per_minute_exactly() -> None:
    result = _convert({"w": {"mode": "audio_transcription", "input_cost_per_second": 3.083e-05}})
    assert parse_pricing(result.text, source="y").models["w"].per_audio_minute == 1_849_800


def test_names_are_quoted_so_any_name_survives_yaml() -> None:
    names = ["bedrock/us.anthropic.claude:0", "@cf/meta/llama", "a#b", "yes", "1.5", "ünï"]
    result = _convert({name: {"input_cost_per_token": 1e-06} for name in names})
    assert parse_pricing(result.text, source="y").names() == sorted(names)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "x.json: invalid JSON: Expecting property name"),
        ("[]", "x.json: expected a JSON object mapping model names to prices"),
    ],
)
def test_bad_json_is_one_line(text: str, message: str) -> None:
    with pytest.raises(PricingError) as caught:
        convert_litellm(text, source="x.json")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
