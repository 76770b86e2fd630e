"""Allow-lists, the model listing, and the aliases setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import errors
from gateway.apis import default_endpoints
from gateway.edge.model_access import check_allowed, is_allowed, model_list
from gateway.provider_settings import ProviderConfig
from gateway.settings import ConfigError, parse_settings
from pricing import parse_pricing


def test_allow_lists_are_globs() -> None:
    assert is_allowed("anything", None)
    assert is_allowed("claude-sonnet-4-6", ["gpt-4o-mini", "claude-*"])
    assert not is_allowed("gpt-4o", ["gpt-4o-mini"])
    assert not is_allowed("gpt-4o-mini", [])
    with pytest.raises(errors.ModelNotAllowed) as info:
        check_allowed("gpt-4o", ["gpt-4o-mini"])
    assert info.value.status == 403 and info.value.code == "model_not_allowed"


def test_model_list_is_exact_priced_routed_and_allowed() -> None:
    table = parse_pricing(
        "models:\n  a-1: {input: 1}\n  a-*: {input: 1}\n  b-1: {input: 1}\n  c-1: {input: 1}\n",
        source="t",
    )
    providers = [
        ProviderConfig(
            name="p", kind="openai", base_url="http://x", models=("a-*",), api_key="sk-p"
        ),
        ProviderConfig(name="q", kind="mock", base_url="", models=("b-*", "a-*")),
    ]
    listed = model_list(table, providers, None)
    assert listed["object"] == "list"
    assert listed["data"] == [
        {"id": "a-1", "object": "model", "created": 0, "owned_by": "p"},
        {"id": "b-1", "object": "model", "created": 0, "owned_by": "q"},
    ]
    assert [m["id"] for m in model_list(table, providers, ["b*"])["data"]] == ["b-1"]  # type: ignore[attr-defined]


def settings_with(aliases: object) -> object:
    return parse_settings({"aliases": aliases}, source="gw.yaml", base_dir=Path("."), env={})


def test_aliases_setting() -> None:
    assert settings_with({"fast": "gpt-4o-mini"}).aliases == {"fast": "gpt-4o-mini"}  # type: ignore[attr-defined]
    assert settings_with(None).aliases == {}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("aliases", "message"),
    [
        (["fast"], "gw.yaml: aliases: must be a mapping"),
        ({"fast": 3}, "gw.yaml: aliases.fast: must be the name of a model"),
        ({"fast": ""}, "gw.yaml: aliases.fast: must be the name of a model"),
        ({"gpt-*": "gpt-4o"}, "gw.yaml: aliases.gpt-*: an alias must be a model name"),
        ({"a": "b", "b": "c"}, "gw.yaml: aliases.a: 'b' is itself an alias"),
        ({"a": "a"}, "gw.yaml: aliases.a: an alias cannot stand for itself"),
    ],
)
def test_bad_aliases_are_one_line_errors(aliases: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_with(aliases)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_endpoints_resolve_aliases_in_the_body() -> None:
    endpoint = default_endpoints({"fast": "gpt-4o-mini"})["/chat/completions"]
    req = endpoint.parse(b'{"model": "fast", "messages": []}', "application/json")
    assert req.model == "gpt-4o-mini"
    assert b'"model":"gpt-4o-mini"' in req.body
    same = endpoint.parse(b'{"model": "gpt-4o", "messages": []}', "application/json")
    assert same.body == b'{"model": "gpt-4o", "messages": []}'  # untouched when no alias


@pytest.mark.parametrize(
    "base_url", ["http://", "ftp://example.com", "example.com/v1", "https://h:notaport/v1", 7]
)
def test_a_provider_base_url_needs_a_scheme_and_a_host(base_url: object) -> None:
    data = {"providers": [{"name": "p", "kind": "openai", "base_url": base_url,
                           "models": ["gpt-*"]}]}  # fmt: skip
    with pytest.raises(ConfigError) as info:
        parse_settings(data, source="gw.yaml", base_dir=Path("."), env={})
    assert str(info.value).startswith("gw.yaml: providers[0].base_url: must be an http")


def test_a_provider_base_url_with_host_and_port_is_accepted() -> None:
    data = {"providers": [{"name": "p", "kind": "openai", "base_url": "http://10.0.0.5:8000/v1",
                           "models": ["gpt-*"]}]}  # fmt: skip
    settings = parse_settings(data, source="gw.yaml", base_dir=Path("."), env={})
    assert settings.providers[0].base_url == "http://10.0.0.5:8000/v1"
