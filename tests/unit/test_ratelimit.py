from __future__ import annotations

from gateway.billing.wallet import Admission, Limits
from gateway.edge.ratelimit_headers import format_duration, headers, refusal_message


def test_format_duration_like_openai() -> None:
    assert format_duration(20) == "20ms"
    assert format_duration(1500) == "1.5s"
    assert format_duration(6000) == "6s"
    assert format_duration(360_000) == "6m0s"
    assert format_duration(-5) == "0ms"


def test_headers_report_the_tighter_of_key_and_account() -> None:
    limits = Limits(key_rpm=100, key_tpm=0, account_rpm=10, account_tpm=5000)
    admission = Admission(available=1, hold=1, now_ms=0, remaining=(90, -1, 3, 4000),
                          resets_ms=(6000, 0, 42000, 12000))  # fmt: skip
    h = headers(limits, admission)
    assert h == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "3",
        "x-ratelimit-reset-requests": "42s",
        "x-ratelimit-limit-tokens": "5000",
        "x-ratelimit-remaining-tokens": "4000",
        "x-ratelimit-reset-tokens": "12s",
    }


def test_no_limits_no_headers() -> None:
    admission = Admission(1, 1, 0, (-1, -1, -1, -1), (0, 0, 0, 0))
    assert headers(Limits(), admission) == {}


def test_refusal_messages_name_the_limit() -> None:
    limits = Limits(key_rpm=5, key_tpm=100, account_rpm=0, account_tpm=0)
    assert "key RPM limit of 5 requests per minute" in refusal_message(limits, 0, 1200, 10)
    assert "Try again in 1.2s" in refusal_message(limits, 0, 1200, 10)
    assert "more than the key TPM limit of 100 tokens" in refusal_message(limits, 1, -1, 500)
