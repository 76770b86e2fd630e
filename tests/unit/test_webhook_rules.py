"""The dispatcher's pure rules (gateway.events): which webhook URLs are allowed, when a failed
delivery is tried again, what the events listing shows, and the config fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import errors
from gateway.events.backoff import Backoff
from gateway.events.delivery_state import (
    BEFORE_START,
    DeliveryState,
    Record,
    Tries,
    pack_record,
    parse_state,
    shown,
    unpack_record,
)
from gateway.events.dispatch_config import DispatchConfig, parse_dispatch_config
from gateway.events.feed_group import pointers, start_cursor
from gateway.events.webhook_urls import new_webhook_secret, url_problem, webhook_url_field
from gateway.settings import ConfigError, parse_settings


@pytest.mark.parametrize("url", [
    "https://example.com/hook", "https://example.com:8443/a?b=c", "http://127.0.0.1:9000/h",
    "http://localhost/h", "http://10.0.0.7/h", "http://192.168.1.2/h", "http://[::1]/h",
    "http://[fd00::1]:80/h", "https://[2001:db8::1]/h",
])  # fmt: skip
def test_allowed_urls(url: str) -> None:
    assert url_problem(url) is None
    assert webhook_url_field(url) == url


@pytest.mark.parametrize(("url", "problem"), [
    ("http://example.com/h", "https://"), ("http://8.8.8.8/h", "https://"),
    ("ftp://example.com/", "https://"), ("example.com/h", "https://"), ("https:///h", "host"),
    ("https://u:p@example.com/", "user or password"), ("https://u@example.com/", "user"),
    ("https://example.com/#x", "fragment"), ("https://exa mple.com/", "printable"),
    ("https://example.com:99999/", "URL"), ("https://é.example/", "ASCII"),
    ("https://example.com/" + "a" * 2048, "2048"),
])  # fmt: skip
def test_refused_urls_say_why(url: str, problem: str) -> None:
    found = url_problem(url)
    assert found is not None and problem in found, found
    with pytest.raises(errors.InvalidRequest) as info:
        webhook_url_field(url)
    assert info.value.param == "webhook_url"


def test_null_clears_and_other_types_are_refused() -> None:
    assert webhook_url_field(None) is None
    for bad in (5, ["https://x"], {"url": "https://x"}, True):
        with pytest.raises(errors.InvalidRequest):
            webhook_url_field(bad)
    one, two = new_webhook_secret(), new_webhook_secret()
    assert one.startswith("whsec_") and len(one) == 6 + 43 and one != two


def test_the_backoff_doubles_from_one_second_to_an_hour() -> None:
    policy = Backoff()
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert policy.delay(12) == 2048.0 and policy.delay(13) == 3600.0 == policy.delay(10_000)


def test_an_event_is_tried_for_retry_for_then_given_up() -> None:
    policy = Backoff(first=1.0, most=3600.0, retry_for=26 * 3600.0)
    first, deadline = 1_000_000, 1_000_000 + 26 * 3600_000
    assert policy.next_try_ms(1, first, first + 50) == first + 1050
    assert policy.next_try_ms(30, first, deadline - 10) == deadline  # the last try: at it
    assert policy.next_try_ms(31, first, deadline) is None
    tries, now, failures = [], first, 0
    while (nxt := policy.next_try_ms(failures + 1, first, now)) is not None:
        failures += 1
        tries.append(nxt - now)
        now = nxt
    assert tries[:3] == [1000, 2000, 4000] and max(tries) == 3_600_000
    assert now == deadline and failures == 37  # 12 doubling (4095 s), 24 hourly, one short


def test_what_the_listing_shows() -> None:
    state = parse_state(["5-0", "7-0", "2", "3", "100", "200", "1", "boom"])
    assert state == DeliveryState("5-0", "7-0", Tries(2, 3, 100, 200, True, "boom"))
    start = "3-0"
    assert shown("4-0", pack_record("delivered", 1, None), state, start) == Record("delivered", 1)
    assert shown("4-0", None, state, start) == Record("failed", 0, BEFORE_START)
    assert shown("7-0", None, state, start) == Record("pending", 2, "boom")
    assert shown("8-0", None, state, start) == Record("pending")
    fresh = parse_state([None] * 8)
    assert fresh == DeliveryState() and fresh.tries("1-0") == Tries()
    assert shown("2-0", None, fresh, start).state == "failed"  # before delivery started
    assert shown("3-1", None, fresh, start).state == "pending"
    assert unpack_record(pack_record("failed", 7, "a|b")) == Record("failed", 7, "a|b")
    assert start_cursor(90_000) == "30000-0" and start_cursor(5) == "0-0"


def test_feed_rows_become_pointers() -> None:
    rows = [("9-0", {"a": "acct", "e": "1-0"}), ("9-1", None), (None, None)]
    assert [(p.feed_id, p.account, p.entry_id) for p in pointers(rows)] == [
        ("9-0", "acct", "1-0"), ("9-1", "", "")]


def fail(name: str, problem: str) -> ConfigError:
    return ConfigError(f"gw.yaml: {name}: {problem}")


def test_the_config_fields() -> None:
    assert parse_dispatch_config({}, fail) == DispatchConfig()
    config = parse_dispatch_config({"webhook_retry_for": 60, "webhook_backoff": 0.5,
                                    "webhook_backoff_max": 4, "webhook_timeout": 2,
                                    "webhook_concurrency": 3, "dispatch_claim_after": 1},
                                   fail)  # fmt: skip
    assert config == DispatchConfig(60.0, 0.5, 4.0, 2.0, 3, 1.0)
    assert config.policy == Backoff(0.5, 4.0, 60.0) and config.lock_ms == 6000
    for fields, message in (({"webhook_timeout": 0}, "webhook_timeout: must be a positive"),
                            ({"webhook_retry_for": "1h"}, "webhook_retry_for: must be"),
                            ({"webhook_concurrency": 1.5}, "webhook_concurrency: must be"),
                            ({"dispatch_claim_after": True}, "dispatch_claim_after: must"),
                            ({"webhook_backoff": 10, "webhook_backoff_max": 5},
                             "webhook_backoff: must not exceed webhook_backoff_max")):  # fmt: skip
        with pytest.raises(ConfigError) as info:
            parse_settings(fields, source="gw.yaml", base_dir=Path("."), env={})
        assert str(info.value).startswith(f"gw.yaml: {message}"), info.value
    settings = parse_settings({"webhook_timeout": 3}, source="gw.yaml", base_dir=Path("."),
                              env={})  # fmt: skip
    assert settings.webhooks == DispatchConfig(timeout=3.0)
