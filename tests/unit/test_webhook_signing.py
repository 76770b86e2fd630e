"""The webhook's body and its ``Tollgate-Signature`` (gateway.events.event, .signature): README's
recipe and the module's ``verify`` agree, and both refuse what was not signed, or not now."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.events.event import Event, entry_key, event_id, parse_entry, webhook_body
from gateway.events.signature import sign, verify
from tests.support.webhook_receiver import readme_verify

SECRET = "whsec_" + "k" * 43
BODY = b'{"id":"evt_a_1-0","event":"balance_alert"}'
T = 1_765_148_400


def test_the_header_is_the_documented_hmac() -> None:
    header = sign(SECRET, BODY, T)
    mac = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={mac}"


@pytest.mark.parametrize("check", [verify, readme_verify()], ids=["module", "readme"])
def test_verify_takes_a_signed_body_and_refuses_anything_else(check: Callable[..., bool]) -> None:
    now = int(time.time())
    good = sign(SECRET, BODY, now)
    assert check(SECRET, good, BODY)
    assert check(SECRET, sign(SECRET, BODY, now - 290), BODY)
    assert not check(SECRET, sign(SECRET, BODY, now - 310), BODY)  # a replay
    assert not check(SECRET, sign(SECRET, BODY, now + 310), BODY)  # a bad clock
    assert not check(SECRET, good, BODY + b" ")  # a byte changed
    assert not check(SECRET + "x", good, BODY)
    mac = good.split("v1=")[1]
    assert check(SECRET, f"t={now},v1=0000,v1={mac}", BODY)  # several (a secret changing)
    assert check(SECRET, f" t={now} , v1={mac} ", BODY)
    for bad in ("", "t=", f"v1={mac}", f"t={now}", f"t=x{now},v1={mac}",
                f"t={now + 1},v1={mac}", f"t={now},v1={mac[:-1]}", f"t={now},v1=é{mac}",
                f"t=١٢,v1={mac}", f"t={now},v0={mac}"):  # fmt: skip
        assert not check(SECRET, bad, BODY), bad


def test_the_tolerance_is_300_seconds_either_way() -> None:
    good = sign(SECRET, BODY, T)
    assert verify(SECRET, good, BODY, now=T + 300) and verify(SECRET, good, BODY, now=T - 300)
    assert not verify(SECRET, good, BODY, now=T + 301)
    assert not verify(SECRET, good, BODY, now=T - 301)
    assert verify(SECRET, good, BODY, tolerance=1000, now=T + 999)


@given(body=st.binary(max_size=200), secret=st.text(min_size=1, max_size=60),
       t=st.integers(min_value=0, max_value=2**40))  # fmt: skip
def test_signing_and_checking_agree_on_any_body_and_key(body: bytes, secret: str, t: int) -> None:
    assert verify(secret, sign(secret, body, t), body, now=t)


@given(header=st.text(max_size=200))
def test_verify_never_raises_on_a_header_from_anyone(header: str) -> None:
    assert verify(SECRET, header, BODY, now=T) in (True, False)
    assert readme_verify()(SECRET, header, BODY) in (True, False)


def test_the_body_carries_the_id_the_time_the_account_and_the_data_twice() -> None:
    event = parse_entry("acct-1", "1765148400123-4", {
        "t": "event", "e": "wallet_balance_low", "r": "auto_1", "a": "0",
        "d": '{"threshold":"20.00","action":"auto_top_up","amount":"10.00","order_id":"auto_1",'
             '"id":"not-the-id"}'})  # fmt: skip
    assert event is not None and event.id == event_id("acct-1", "1765148400123-4")
    body = orjson.loads(webhook_body(event))
    assert body["id"] == "evt_acct-1_1765148400123-4"  # the data's own "id" does not win
    assert (body["event"], body["account"]) == ("wallet_balance_low", "acct-1")
    assert body["created_at"] == "2025-12-07T23:00:00.123Z"
    assert body["data"]["order_id"] == body["order_id"] == "auto_1"
    assert body["data"]["id"] == "not-the-id" and body["amount"] == "10.00"


def test_entries_that_are_not_events_or_are_unreadable() -> None:
    assert parse_entry("a", "1-0", {"t": "charge", "a": "5"}) is None
    odd = parse_entry("a", "1-0", {"t": "event", "e": "x", "d": "not json"})
    assert odd == Event("a", "1-0", "x", "", {})
    assert parse_entry("a", "1-0", {"t": "event", "e": "x", "d": "[1]"}) == odd
    assert entry_key("12-3") < entry_key("12-10") < entry_key("13-0")
    assert entry_key("garbage") == (0, 0)
