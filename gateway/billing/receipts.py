"""Receipts: one for every top-up, numbered per account from 1 without gaps.

The top-up script (``lua/money_move_v6.lua``) issues them: in the same call as the top-up it
takes the account's next number (``HINCRBY`` of the wallet hash's ``receipts``) and writes the
receipt, as JSON of strings, into the account's receipts hash under that number, with the
billing details of that moment copied from the profile. A replayed top-up answers with its
transaction and issues nothing. Receipts are never rewritten, so reading one is a plain
``HGET``; rendering them (HTML, PDF) is :mod:`.receipt_render`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.billing.billing_details import BillingDetails
from gateway.billing.timestamps import utc_ms
from gateway.store.keys import AccountKeys
from gateway.store.replies import as_text
from pricing import format_usd

CURRENCY = "USD"
MAX_NUMBER = 10**15  # a receipt number a path may name (far past any account's top-ups)


@dataclass(frozen=True, slots=True)
class Issuer:
    """Who issues the receipts (the operator's business): config ``receipt_issuer``."""

    name: str
    address: str = ""  # lines separated by "\n"
    tax_id: str = ""

    def to_json(self) -> dict[str, str | None]:
        return {"name": self.name, "address": self.address or None, "tax_id": self.tax_id or None}


def parse_issuer(value: object, fail: Callable[[str, str], Exception]) -> Issuer | None:
    """``receipt_issuer: {name, address?, tax_id?}`` from the config file, or None (absent);
    ``fail(field, problem)`` is raised for what is wrong."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise fail("receipt_issuer", "must be a mapping with a name (and address, tax_id)")
    for key, text in value.items():
        if key not in ("name", "address", "tax_id"):
            raise fail(f"receipt_issuer.{key}", "unknown field; expected name, address, tax_id")
        if not isinstance(text, str) or not text.strip() or len(text) > 1000:
            raise fail(f"receipt_issuer.{key}", "must be a non-empty string (at most 1000 "
                       "characters)")  # fmt: skip
    return Issuer(**{key: str(text).strip() for key, text in value.items()})


@dataclass(frozen=True, slots=True)
class Receipt:
    number: int
    account: str
    transaction_id: str  # the top-up's entry in the transactions stream
    order_id: str  # the payment's reference (a Stripe session, your order id)
    amount: int  # nanodollars
    ts_ms: int
    note: str
    billing: BillingDetails

    @property
    def issued_at(self) -> str:
        return utc_ms(self.ts_ms, millis=True)

    def to_json(self, issuer: Issuer | None = None) -> dict[str, object]:
        return {
            "number": self.number,
            "account": self.account,
            "issued_at": self.issued_at,
            "amount": format_usd(self.amount),
            "currency": CURRENCY,
            "transaction_id": self.transaction_id,
            "order_id": self.order_id,
            "note": self.note,
            "billing": self.billing.to_json(),
            "issuer": issuer.to_json() if issuer is not None else None,
        }


def receipt_from(account_id: str, stored: str | bytes) -> Receipt:
    """A receipt as the top-up script stored it (a JSON object of strings)."""
    f: Mapping[str, Any] = orjson.loads(stored)
    return Receipt(
        number=int(f["number"]),
        account=account_id,
        transaction_id=str(f.get("transaction_id", "")),
        order_id=str(f.get("order_id", "")),
        amount=int(f["amount"]),
        ts_ms=int(f.get("ts_ms", 0)),
        note=str(f.get("note", "")),
        billing=BillingDetails.from_fields({k: str(v) for k, v in f.items()}),
    )


class Receipts:
    """Reads an account's receipts."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def get(self, account_id: str, number: int) -> Receipt | None:
        """Receipt ``number`` of the account; None when it has none of that number."""
        stored = await self._redis.hget(AccountKeys(account_id).receipts, str(number))
        return receipt_from(account_id, stored) if stored is not None else None

    async def issued(self, account_id: str) -> int:
        """How many receipts the account has (the newest one's number)."""
        count = await self._redis.hget(AccountKeys(account_id).wallet, "receipts")
        return int(as_text(count)) if count is not None else 0

    async def page(
        self, account_id: str, *, limit: int = 100, before: int = 0
    ) -> tuple[list[Receipt], int | None]:
        """Newest first: up to ``limit`` receipts numbered below ``before`` (0: from the
        newest); and the ``before`` of the next page (None: this page reaches receipt 1)."""
        newest = await self.issued(account_id)
        top = min(newest, before - 1) if before else newest
        numbers = list(range(top, max(top - limit, 0), -1))
        if not numbers:
            return [], None
        key = AccountKeys(account_id).receipts
        stored = await self._redis.hmget(key, [str(n) for n in numbers])
        found = [receipt_from(account_id, s) for s in stored if s is not None]
        return found, numbers[-1] if numbers[-1] > 1 else None
