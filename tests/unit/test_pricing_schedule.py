"""Scheduled prices: ``effective_from``, ``lookup(model, at)`` and ``next_change``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from pricing import ModelPrice, PriceTable, parse_pricing
from pricing.instants import format_instant, parse_instant
from tests.support.pricing_errors import pricing_error

SCHEDULED = """\
version: 2026-11-01
models:
  gpt-4o-mini:
    - {input: 0.15, output: 0.60}
    - {effective_from: 2026-12-01, input: 0.20, output: 0.80}
    - {effective_from: "2027-01-15T12:30:00+01:00", input: 0.25, output: 1.00}
  gpt-*: {input: 5, output: 20}
  gpt-5: [{effective_from: 2026-12-10T00:00:00Z, input: 1.25, output: 10}]
  whisper-1: {per_audio_minute: 0.006}
"""

DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
JAN_15 = datetime(2027, 1, 15, 11, 30, tzinfo=UTC)  # 12:30 at +01:00
DEC_10 = datetime(2026, 12, 10, tzinfo=UTC)
TICK = timedelta(microseconds=1)


@pytest.fixture
def table() -> PriceTable:
    return parse_pricing(SCHEDULED, source="p.yaml")


def _input_at(table: PriceTable, model: str, at: datetime | None) -> int | None:
    price = table.lookup(model, at)
    return None if price is None else price.input


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2020, 1, 1, tzinfo=UTC), 150_000_000),
        (DEC_1 - TICK, 150_000_000),  # just before the first change
        (DEC_1, 200_000_000),  # at it: the new price is in force
        (DEC_1 + TICK, 200_000_000),
        (JAN_15 - TICK, 200_000_000),
        (JAN_15, 250_000_000),
        (datetime(2099, 1, 1, tzinfo=UTC), 250_000_000),
    ],
)
def test_lookup_picks_the_latest_price_started_at_or_before_at(
    table: PriceTable, at: datetime, expected: int
) -> None:
    assert _input_at(table, "gpt-4o-mini", at) == expected


def test_naive_and_other_zone_instants_are_compared_as_utc(table: PriceTable) -> None:
    assert _input_at(table, "gpt-4o-mini", datetime(2026, 11, 30, 23, 59, 59)) == 150_000_000
    assert _input_at(table, "gpt-4o-mini", datetime(2026, 12, 1)) == 200_000_000
    # 2026-12-01T00:30+01:00 is still November 30 in UTC.
    plus_one = timezone(timedelta(hours=1))
    assert _input_at(table, "gpt-4o-mini", datetime(2026, 12, 1, 0, 30, tzinfo=plus_one)) == (
        150_000_000
    )


def test_lookup_without_at_uses_now(table: PriceTable) -> None:
    now = datetime.now(UTC)
    assert table.lookup("gpt-4o-mini") == table.lookup("gpt-4o-mini", now)
    assert _input_at(table, "whisper-1", None) is None
    price = table.lookup("whisper-1")
    assert price is not None
    assert price.per_audio_minute == 6_000_000


def test_a_model_not_started_yet_falls_back_to_a_glob(table: PriceTable) -> None:
    assert _input_at(table, "gpt-5", DEC_10 - TICK) == 5_000_000_000  # gpt-*
    assert _input_at(table, "gpt-5", DEC_10) == 1_250_000_000
    price = table.lookup("gpt-5", DEC_10)
    assert price is not None
    assert price.model == "gpt-5"
    assert price.effective_from == DEC_10


def test_a_model_whose_prices_all_start_later_is_unpriced_until_then() -> None:
    table = parse_pricing("models:\n  m: {effective_from: 2026-12-01, input: 1}\n", source="p.yaml")
    assert table.lookup("m", DEC_1 - TICK) is None
    assert _input_at(table, "m", DEC_1) == 1_000_000_000


def test_entries_are_sorted_whatever_their_order_in_the_file() -> None:
    table = parse_pricing(
        "models:\n"
        "  m:\n"
        "    - {effective_from: 2027-01-01, input: 3}\n"
        "    - {input: 1}\n"
        "    - {effective_from: 2026-12-01, input: 2}\n",
        source="p.yaml",
    )
    assert [price.input for price in table.schedule("m")] == [
        1_000_000_000,
        2_000_000_000,
        3_000_000_000,
    ]
    assert table.models["m"].effective_from is None
    assert [price.effective_from for price in table.scheduled["m"]] == [
        DEC_1,
        datetime(2027, 1, 1, tzinfo=UTC),
    ]
    assert _input_at(table, "m", datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)) == 2_000_000_000


def test_next_change_is_the_earliest_start_strictly_after(table: PriceTable) -> None:
    assert table.next_change(datetime(2026, 1, 1, tzinfo=UTC)) == DEC_1
    assert table.next_change(DEC_1 - TICK) == DEC_1
    assert table.next_change(DEC_1) == DEC_10  # strictly after: not DEC_1 itself
    assert table.next_change(DEC_10) == JAN_15
    assert table.next_change(JAN_15 - TICK) == JAN_15
    assert table.next_change(JAN_15) is None
    assert table.next_change(datetime(2026, 12, 5)) == DEC_10  # naive: UTC


def test_a_table_without_schedules_never_changes() -> None:
    table = parse_pricing("models:\n  m: {input: 1}\n", source="p.yaml")
    assert table.next_change(datetime(1970, 1, 1, tzinfo=UTC)) is None
    assert table.scheduled == {}
    assert table.schedule("m") == (ModelPrice(model="m", input=1_000_000_000),)
    assert table.schedule("nope") == ()


def test_a_plain_mapping_parses_as_before(table: PriceTable) -> None:
    assert table.models["whisper-1"] == ModelPrice(model="whisper-1", per_audio_minute=6_000_000)
    assert "whisper-1" not in table.scheduled
    assert table.names() == ["gpt-*", "gpt-4o-mini", "gpt-5", "whisper-1"]


def test_each_entry_is_a_full_price_with_its_own_tiers() -> None:
    table = parse_pricing(
        "models:\n"
        "  m:\n"
        "    - {input: 1, output: 2, max_output_tokens: 100}\n"
        "    - effective_from: 2026-12-01\n"
        "      input: 3\n"
        "      output: 4\n"
        "      tiers: [{above: 1000, input: 6, output: 8}]\n",
        source="p.yaml",
    )
    before, after = table.schedule("m")
    assert before.max_output_tokens == 100
    assert before.tiers == ()
    assert after.max_output_tokens is None  # an entry does not inherit from the one before
    assert after.tiers[0].input == 6_000_000_000


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (
            "  m: []\n",
            "p.yaml: models.m: must be a mapping of price fields, or a list of them each with "
            "effective_from",
        ),
        ("  m: [{input: 1}, 3]\n", "p.yaml: models.m[1]: must be a mapping of price fields"),
        (
            "  m: [{input: 1}, {effective_from: 2026-12-01}]\n",
            "p.yaml: models.m[1]: has no price;",
        ),
        (
            "  m: [{input: 1}, {effective_from: 2026-12-01, input: -1}]\n",
            "p.yaml: models.m[1].input: must not be negative",
        ),
        (
            "  m: [{input: 1}, {effective_from: 2026-13-01, input: 2}]\n",
            "p.yaml: models.m[1].effective_from: must be an ISO-8601 date like 2026-12-01",
        ),
        (
            "  m: [{input: 1}, {effective_from: soon, input: 2}]\n",
            "p.yaml: models.m[1].effective_from: must be an ISO-8601 date",
        ),
        (
            "  m: [{input: 1}, {effective_from: 20261201, input: 2}]\n",
            "p.yaml: models.m[1].effective_from: must be an ISO-8601 date",
        ),
        (
            "  m: [{input: 1}, {input: 2}]\n",
            "p.yaml: models.m[1].effective_from: missing; only one price may go without it "
            "(models.m[0] is the base)",
        ),
        (
            "  m:\n"
            "    - {effective_from: 2026-12-01, input: 1}\n"
            "    - {input: 0.5}\n"
            "    - {effective_from: '2026-12-01T00:00:00Z', input: 2}\n",
            "p.yaml: models.m[2].effective_from: 2026-12-01T00:00:00Z is also when models.m[0] "
            "starts; two prices cannot start at the same instant",
        ),
        (
            "  m:\n"
            "    - {effective_from: 2026-12-01T01:00:00+01:00, input: 1}\n"
            "    - {effective_from: 2026-12-01 00:00:00, input: 2}\n",
            "p.yaml: models.m[1].effective_from: 2026-12-01T00:00:00Z is also when models.m[0]",
        ),
        (
            "  m: [{input: 1}, {effective_from: 2026-12-01, input: 2, tiers: [{above: 9}]}]\n",
            "p.yaml: models.m[1].tiers[0].input: missing;",
        ),
    ],
)
def test_schedule_errors_are_one_line_naming_the_entry(models: str, message: str) -> None:
    assert pricing_error(f"models:\n{models}").startswith(message)


def test_parse_instant_reads_dates_datetimes_and_iso_text() -> None:
    assert parse_instant(date(2026, 12, 1)) == DEC_1
    assert parse_instant(datetime(2026, 12, 1)) == DEC_1
    assert parse_instant("2026-12-01") == DEC_1
    assert parse_instant("2026-12-01T00:00:00Z") == DEC_1
    assert parse_instant("2026-12-01T01:00:00+01:00") == DEC_1
    assert parse_instant("2026-12-01T01:00:00+01:00").tzinfo == UTC
    for bad in ("", "yesterday", 20261201, None, True):
        with pytest.raises(ValueError, match="must be an ISO-8601 date"):
            parse_instant(bad)


def test_format_instant_is_utc_iso_with_z() -> None:
    assert format_instant(DEC_1) == "2026-12-01T00:00:00Z"
    assert format_instant(datetime(2026, 12, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == (
        "2026-12-01T00:00:00Z"
    )
    assert format_instant(DEC_1 + timedelta(microseconds=500_000)) == "2026-12-01T00:00:00.5Z"
