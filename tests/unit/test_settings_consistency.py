"""Settings that are each valid but contradict each other stop start-up, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import ConfigError, parse_settings


def parse(**fields: object) -> object:
    return parse_settings(fields, source="gw.yaml", base_dir=Path("."), env={})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hold_ttl": 600, "record_ttl": 300}, "gw.yaml: record_ttl: must be at least hold_ttl"),
        ({"first_byte_timeout": 90, "total_timeout": 60},
         "gw.yaml: first_byte_timeout: must not exceed total_timeout (60 s)"),
        ({"journal_fsync": "sometimes"}, "gw.yaml: journal_fsync: must be one of always"),
    ],
)  # fmt: skip
def test_contradictions_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(**fields)
    assert str(info.value).startswith(message)


def test_the_defaults_agree() -> None:
    settings = parse()
    assert settings.record_ttl >= settings.hold_ttl  # type: ignore[attr-defined]
    assert settings.journal_fsync == "interval"  # type: ignore[attr-defined]
