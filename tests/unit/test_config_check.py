"""Mistakes caught at start, not at request time (issue 14): each check, as a pure function.

The same checks through ``tollgate config check`` and ``tollgate serve`` are in
``tests/integration/test_config_check.py``.
"""

from __future__ import annotations

import itertools
import random
from decimal import Decimal
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import yaml

from gateway import errors
from gateway.cli.config_check import (
    config_problems,
    provider_warnings,
    route_problems,
)
from gateway.edge.model_access import check_configured, model_list, unconfigured_providers
from gateway.settings import ConfigError, Settings, load_settings, parse_settings
from pricing import PriceTable, parse_pricing
from pricing.checks import shadowed_globs
from pricing.exact_yaml import ExactLoader
from pricing.globs import covered, may_overlap, some_name
from tests.support.pricing_errors import pricing_error


def settings(env: dict[str, str] | None = None, **fields: object) -> Settings:
    return parse_settings(fields, source="gw.yaml", base_dir=Path("."), env=env or {})


def table(models: str) -> PriceTable:
    return parse_pricing(f"models:\n{models}", source="p.yaml")


MOCK = {"name": "mock", "kind": "mock", "models": ["mock-*"]}


# --- a. an alias that points at a model with no price ------------------------------------


def test_an_alias_to_an_unpriced_model_is_a_problem() -> None:
    gw = settings(providers=[MOCK], aliases={"fast": "mock-gtp", "cheap": "mock-gpt",
                                             "any": "mock-other", "later": "mock-new"})  # fmt: skip
    prices = table(
        "  mock-gpt: {input: 1}\n  mock-o*: {input: 1}\n"
        "  mock-new: {effective_from: 2099-01-01, input: 1}\n"
    )
    assert config_problems(gw, prices) == [
        "gw.yaml: aliases.fast: points at 'mock-gtp', which has no price in p.yaml; every "
        "request by this name would be refused (model_not_priced)"
    ]


# --- b. duplicate keys --------------------------------------------------------------------


def test_a_duplicate_model_in_the_pricing_file_names_the_key_and_both_lines() -> None:
    text = "models:\n  gpt-4o: {input: 1}\n  gpt-4o-mini: {input: 2}\n  gpt-4o: {input: 3}\n"
    assert pricing_error(text) == (
        "p.yaml: models.gpt-4o: duplicate key, on lines 2 and 4; "
        "YAML would silently keep only the last copy"
    )


def test_a_duplicate_field_on_one_line_is_refused_too() -> None:
    message = pricing_error("models:\n  m: {input: 1, output: 2, input: 3}\n")
    assert message.startswith("p.yaml: models.m.input: duplicate key, twice on line 2")


def test_a_merge_may_still_override_what_it_brings_in() -> None:
    prices = table("  a: &base {input: 1, output: 2}\n  b: {<<: *base, output: 5}\n")
    assert (prices.models["b"].input, prices.models["b"].output) == (10**9, 5 * 10**9)


def test_a_duplicate_key_in_the_config_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text("hold_ttl: 10\nproviders:\n  - {name: a, kind: mock, models: [a-*]}\n"
                    "hold_ttl: 20\n")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert str(info.value) == (
        f"{path}: hold_ttl: duplicate key, on lines 1 and 4; "
        "YAML would silently keep only the last copy"
    )


# --- c. one rule for what a price looks like ----------------------------------------------


@pytest.mark.parametrize(
    ("written", "nanodollars"),
    [
        ("0.0000001", 100),
        ("1e-7", 100),  # YAML 1.1 reads this as text: it was refused
        ("1E-7", 100),
        ("1.0e-7", 100),  # and this as a float: it was accepted
        ("1.5e-1", 150_000_000),
        ("1.5e1", 15_000_000_000),  # no exponent sign: text again in YAML 1.1
        ("15e-1", 1_500_000_000),
        ("+2E+0", 2_000_000_000),
        (".5e-6", 500),
        ("1_000e-3", 1_000_000_000),
        ("0.15", 150_000_000),
        ("3", 3_000_000_000),
    ],
)
def test_plain_and_exponent_prices_are_the_same_exact_decimals(
    written: str, nanodollars: int
) -> None:
    assert table(f"  m: {{input: {written}}}\n").models["m"].input == nanodollars
    loaded = yaml.load(f"x: {written}", Loader=ExactLoader)["x"]
    assert type(loaded) in (int, Decimal)  # never a float, on either path


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("true", "must be a number (USD per 1M tokens), not true"),
        ("no", "must be a number (USD per 1M tokens), not false"),
        ("'0.15'", "must be a number (USD per 1M tokens) written as a plain decimal like 0.15 "
                   "or 1.5e-7, not the text '0.15'"),
        ("'1e-7'", "not the text '1e-7'"),
        ("0x10", "not the text '0x10'"),
        ("1e", "not the text '1e'"),
        (".nan", "is not a finite price"),
        ("-.inf", "is not a finite price"),
        ("-1e-7", "must not be negative"),
        ("1e-10", "has more than 9 decimal places"),
        ("1e30", "is too large"),
    ],
)  # fmt: skip
def test_anything_else_is_refused_with_what_it_was(written: str, problem: str) -> None:
    message = pricing_error(f"models:\n  m: {{input: {written}}}\n")
    assert message.startswith("p.yaml: models.m.input: ") and problem in message


# --- d. globs that cannot match any model -------------------------------------------------


def test_a_provider_glob_behind_an_earlier_providers_glob_can_never_route() -> None:
    gw = settings(providers=[
        {"name": "openai", "kind": "mock", "models": ["gpt-*", "o*"]},
        {"name": "azure", "kind": "mock", "models": ["gpt-4o*", "o3-mini", "o3*", "dall-e-*"]},
    ])  # fmt: skip
    assert route_problems(gw) == [
        f"gw.yaml: providers[1].models[{i}]: {entry!r} can never route a model to 'azure': "
        f"every name it matches goes first to {taker!r} (openai)"
        for i, entry, taker in [(0, "gpt-4o*", "gpt-*"), (1, "o3-mini", "o*"), (2, "o3*", "o*")]
    ]


def test_globs_covered_only_by_several_earlier_globs_together_count() -> None:
    gw = settings(providers=[
        {"name": "a", "kind": "mock", "models": ["m", "m?*"]},
        {"name": "b", "kind": "mock", "models": ["m*"]},
    ])  # fmt: skip
    assert route_problems(gw) == [
        "gw.yaml: providers[1].models[0]: 'm*' can never route a model to 'b': every name it "
        "matches goes first to 'm' (a), 'm?*' (a)"
    ]


def test_what_a_user_means_on_purpose_is_not_a_problem() -> None:
    gw = settings(providers=[
        {"name": "a", "kind": "mock", "models": ["gpt-*", "gpt-4o*"]},  # redundant, harmless
        {"name": "b", "kind": "mock", "models": ["o3*", "gpt[!-]*"]},  # nothing priced yet; [..]
    ])  # fmt: skip
    assert route_problems(gw) == []
    assert config_problems(gw, table("  gpt-4o: {input: 1}\n")) == []


def test_a_pricing_glob_that_a_preferred_glob_covers_can_never_price() -> None:
    prices = table("  gpt*: {input: 1}\n  '*gpt*': {input: 2}\n  gpt-4o*: {input: 3}\n")
    assert prices.lookup("gpt-5").input == 2 * 10**9  # type: ignore[union-attr]
    assert shadowed_globs(prices) == [
        "p.yaml: models.gpt*: can never price a model: every name it matches is priced first "
        "by gpt-4o*, *gpt* (lookup prefers the glob with more literal characters)"
    ]


def test_a_glob_priced_only_from_later_does_not_shadow_yet() -> None:
    prices = table("  gpt*: {input: 1}\n  '*gpt*': {effective_from: 2099-01-01, input: 2}\n")
    assert shadowed_globs(prices) == []


def test_the_glob_walk_agrees_with_fnmatch_on_every_short_name() -> None:
    """The plain version (try every name up to 7 characters) and the automaton agree."""
    rng = random.Random(14)
    names = ["".join(p) for n in range(8) for p in itertools.product("abc", repeat=n)]

    def glob() -> str:
        return "".join(rng.choice("ab*?") for _ in range(rng.randint(0, 5)))

    for _ in range(400):
        all_of = [glob() for _ in range(rng.randint(1, 2))]
        none_of = [glob() for _ in range(rng.randint(0, 2))]
        plain = any(
            all(fnmatchcase(name, g) for g in all_of)
            and not any(fnmatchcase(name, g) for g in none_of)
            for name in names
        )
        assert some_name(all_of, none_of) is plain, (all_of, none_of)


def test_glob_questions() -> None:
    assert covered("gpt*", ["*gpt*"]) and not covered("*gpt*", ["gpt*"])
    assert covered("gpt-4o", ["gpt-*"]) and not covered("gpt-4o", ["o*"])
    assert not covered("x[ab]*", ["x*"])  # classes are not analysed: never reported
    assert may_overlap("*", "claude-*") and not may_overlap("gpt-*", "claude-*")
    assert not may_overlap("*", "claude-*", unless=["claude-*"])
    assert may_overlap("x[ab]", "y*")  # unknown leans to "may"


# --- e. timeouts and retention that contradict each other ---------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"read_timeout": 900, "total_timeout": 800},
         "gw.yaml: read_timeout: must not exceed total_timeout (800 s), the limit on a whole"),
        ({"client_write_timeout": 900, "total_timeout": 800},
         "gw.yaml: client_write_timeout: must not exceed total_timeout (800 s)"),
        ({"record_ttl": 100, "hold_ttl": 10, "ledger_retention": 50},
         "gw.yaml: record_ttl: must not exceed ledger_retention (50 s)"),
    ],
)  # fmt: skip
def test_contradicting_timeouts_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings(**fields)
    assert str(info.value).startswith(message)


def test_every_contradiction_is_reported_at_once_one_line_each() -> None:
    with pytest.raises(ConfigError) as info:
        settings(hold_ttl=600, record_ttl=300, read_timeout=90, first_byte_timeout=90,
                 total_timeout=60)  # fmt: skip
    lines = str(info.value).splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "record_ttl", "first_byte_timeout", "read_timeout"
    ]  # fmt: skip
    assert all(line.startswith("gw.yaml: ") for line in lines)


# --- 2. providers without an API key ------------------------------------------------------


def keyless(env: dict[str, str] | None = None) -> Settings:
    return settings(env, providers=[
        MOCK,
        {"name": "openai", "kind": "openai", "api_key_env": "OPENAI_KEY", "models": ["gpt-*"]},
        {"name": "anthropic", "kind": "anthropic", "models": ["claude-*"]},
    ])  # fmt: skip


def test_a_provider_without_a_key_says_which_setting_is_missing() -> None:
    mock, openai, anthropic = keyless().providers
    assert mock.missing_key() is None
    assert openai.missing_key() == "the environment variable OPENAI_KEY (api_key_env) is not set"
    assert anthropic.missing_key() == "it has neither api_key nor api_key_env"
    assert keyless({"OPENAI_KEY": "sk-1"}).providers[1].missing_key() is None


def test_models_of_a_keyless_provider_are_not_listed_and_are_refused() -> None:
    gw = keyless()
    prices = table("  mock-gpt: {input: 1}\n  gpt-4o: {input: 1}\n  claude-x: {input: 1}\n")
    assert [m["id"] for m in model_list(prices, gw.providers, None)["data"]] == ["mock-gpt"]  # type: ignore[index]
    unconfigured = unconfigured_providers(gw.providers)
    assert sorted(unconfigured) == ["anthropic", "openai"]
    check_configured("mock-gpt", "mock", unconfigured)
    with pytest.raises(errors.InvalidRequest) as info:
        check_configured("gpt-4o", "openai", unconfigured)
    assert (info.value.status, info.value.code) == (400, "provider_not_configured")
    assert "OPENAI_KEY" in info.value.message and "'gpt-4o'" in info.value.message


def test_a_keyless_provider_is_a_warning_not_a_problem() -> None:
    gw = keyless()
    assert config_problems(gw, table("  mock-gpt: {input: 1}\n")) == []
    assert provider_warnings(gw) == [
        "gw.yaml: providers[1] (openai): no API key: the environment variable OPENAI_KEY "
        "(api_key_env) is not set; its models (gpt-*) are left out of GET /v1/models and "
        "refused with provider_not_configured",
        "gw.yaml: providers[2] (anthropic): no API key: it has neither api_key nor api_key_env; "
        "its models (claude-*) are left out of GET /v1/models and refused with "
        "provider_not_configured",
    ]
