"""Reading the admin API's fields and query parameters: amounts, limits, times, cursors, an
account's billing details and display unit. Each returns the value or raises
``InvalidRequest`` naming the field."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway import errors
from gateway.billing.billing_details import PROFILE_FIELDS, detail_problem
from gateway.events.webhook_urls import URL_FIELD, webhook_url_field
from gateway.payments.account_fields import saved_payment_fields
from pricing import parse_usd

LEDGER_CURSOR = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")  # ASCII: Python's \d is any digit
LAST_STREAM_ID = 2**64 - 1  # each half of a Redis stream id is an unsigned 64-bit integer
MAX_CREDITS_PER_USD = 10**6


def amount_field(body: dict[str, Any]) -> int:
    """``amount``: a positive USD amount as a decimal string, in nanodollars."""
    try:
        amount = parse_usd(body.get("amount"), field="amount")
    except ValueError as exc:
        raise errors.InvalidRequest(str(exc), param="amount") from None
    if amount <= 0:
        raise errors.InvalidRequest("'amount' must be greater than zero.", param="amount")
    return amount


def query_limit(text: str, most: int) -> int:
    """``limit`` from a query string: an integer from 1 to ``most``, else 400."""
    try:
        limit = int(text) if text.isascii() and text.isdigit() else -1
    except ValueError:
        limit = -1
    if not 1 <= limit <= most:
        raise errors.InvalidRequest(f"'limit' must be an integer from 1 to {most}.",
                                    param="limit")  # fmt: skip
    return limit


def time_param(query: Mapping[str, str], name: str) -> int:
    """``from`` / ``to``: an RFC 3339 time with its zone, or a date (UTC midnight); unix ms, 0
    when absent."""
    text = query.get(name, "")
    if not text:
        return 0
    try:
        when = datetime.fromisoformat(text + ("T00:00:00+00:00" if len(text) == 10 else ""))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise errors.InvalidRequest(
            f"'{name}' must be a date (2027-01-31) or an RFC 3339 time with its zone.",
            param=name)  # fmt: skip
    return int(when.timestamp() * 1000)


def expiry_field(body: dict[str, Any], name: str) -> int:
    """An expiry: an RFC 3339 time in the future (``2027-01-31T00:00:00Z``), or null/absent
    for never; as unix seconds (0: never)."""
    value = body.get(name)
    if value is None:
        return 0
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise errors.InvalidRequest(
            f"'{name}' must be an RFC 3339 time with a zone (e.g. 2027-01-31T00:00:00Z), or "
            "null.", param=name)  # fmt: skip
    seconds = int(when.timestamp())
    if seconds <= time.time():
        raise errors.InvalidRequest(f"'{name}' must be in the future.", param=name)
    return seconds


def is_ledger_cursor(text: str) -> bool:
    """Whether Redis can read the feed after ``text``: two integers that fit a stream id and
    are not the last id of all (Redis refuses each of these, and a refusal is taken for Redis
    failing: 503, and the breaker opens for every request)."""
    match = LEDGER_CURSOR.fullmatch(text)
    if match is None:
        return False
    ms, seq = int(match[1]), int(match[2])
    return ms <= LAST_STREAM_ID and seq <= LAST_STREAM_ID and (ms, seq) != (LAST_STREAM_ID,) * 2


def profile_fields(body: dict[str, Any]) -> dict[str, str | None]:
    """An account body's ``billing`` details, ``credits_per_usd`` and ``webhook_url``, as
    profile hash fields; None clears a field (``"billing": {"tax_id": null}``, ``"billing":
    null`` clears all)."""
    fields: dict[str, str | None] = {}
    if "billing" in body:
        fields.update(billing_fields(body["billing"]))
    if "credits_per_usd" in body:
        per_usd = body["credits_per_usd"]
        if per_usd is not None and (
            type(per_usd) is not int or not 1 <= per_usd <= MAX_CREDITS_PER_USD
        ):
            raise errors.InvalidRequest(
                f"'credits_per_usd' must be an integer from 1 to {MAX_CREDITS_PER_USD} (credits "
                "to the dollar), or null for USD only.", param="credits_per_usd")  # fmt: skip
        fields["credits_per_usd"] = str(per_usd) if per_usd is not None else None
    if URL_FIELD in body:  # where the account's events go (null: nowhere)
        fields[URL_FIELD] = webhook_url_field(body[URL_FIELD])
    fields.update(saved_payment_fields(body))  # stripe_customer_id, stripe_payment_method
    return fields


def billing_fields(value: object) -> dict[str, str | None]:
    """``billing``: an object of ``name``, ``address`` (lines), ``tax_id``, ``email``, each a
    string (trimmed; empty: clear) or null (clear); the ones left out stay as they are."""
    if value is None:
        return dict.fromkeys(PROFILE_FIELDS.values())
    if not isinstance(value, dict):
        raise errors.InvalidRequest(
            "'billing' must be an object of name, address, tax_id and email, or null.",
            param="billing")  # fmt: skip
    fields: dict[str, str | None] = {}
    for name, detail in value.items():
        param = f"billing.{name}"
        if name not in PROFILE_FIELDS:
            raise errors.InvalidRequest(f"Unknown field {param!r}; expected one of "
                                        f"{', '.join(PROFILE_FIELDS)}.", param=param)  # fmt: skip
        if detail is not None and not isinstance(detail, str):
            raise errors.InvalidRequest(f"'{param}' must be a string or null.", param=param)
        text = "\n".join(line.strip() for line in (detail or "").strip().splitlines())
        problem = detail_problem(name, text) if text else None
        if problem:
            raise errors.InvalidRequest(f"'{param}' {problem}.", param=param)
        fields[PROFILE_FIELDS[name]] = text or None
    return fields
