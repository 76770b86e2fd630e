"""The ledger entry's packed fields read back exactly as written."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.billing.ledger import (
    ChargeEntry,
    admission_field,
    outcome_field,
    pack,
    unpack,
    usage_field,
)
from gateway.billing.records import admission_ms, new_request_id
from pricing import Usage

texts = st.text(max_size=20)


@given(st.lists(texts, min_size=1, max_size=6))
def test_pack_and_unpack_agree_whatever_the_text(parts: list[str]) -> None:
    assert unpack(pack(*parts), len(parts)) == parts


def test_a_charge_entry_round_trips() -> None:
    usage = Usage(input_tokens=10, output_tokens=5, cache_read_tokens=2, cache_write_tokens=1,
                  cache_write_1h_tokens=4, reasoning_tokens=3, images=2,
                  image_variant="1024x1024/hd", audio_ms=61500)  # fmt: skip
    fields = {
        "t": "charge", "r": "req_1", "k": "key_1", "p": "proj|x", "m": "gpt-4o",
        "u": usage_field(usage),
        "x": admission_field("/chat/completions", False, "2026-11|b", "2026-12-01T00:00:00+00:00")
        + "|1700000000000|900",
        "y": outcome_field("settled", "upstream", 200, 1700000000123) + "|7",
        "a": "800", "s": "100,200,500", "b": "-5",
    }  # fmt: skip
    e = ChargeEntry.from_fields("1-0", fields)
    assert (e.usage["input_tokens"], e.usage["audio_ms"], e.image_variant) == (
        10,
        61500,
        "1024x1024/hd",
    )
    assert (e.price_version, e.price_effective_from) == ("2026-11|b", "2026-12-01T00:00:00+00:00")
    assert (e.created_ms, e.hold, e.shortfall, e.http_status) == (1700000000000, 900, 7, 200)
    assert (e.amount, e.split, e.balance) == (800, (100, 200, 500), -5)
    view = e.record_json()
    assert view["usage"]["total_tokens"] == 10 + 5 + 2 + 1 + 4
    assert view["cost_by_source"] == {"free_quota": "0.0000001", "credits": "0.0000002",
                                      "cash": "0.0000005"}  # fmt: skip


def test_request_ids_carry_their_admission_time() -> None:
    rid = new_request_id()
    assert rid.startswith("req_") and len(rid) == 35
    ms = admission_ms(rid)
    assert ms is not None and abs(ms - __import__("time").time() * 1000) < 5000
    assert admission_ms("req_nothex") is None and admission_ms("abc") is None
