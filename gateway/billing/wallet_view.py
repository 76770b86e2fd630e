"""What a wallet shows: its balances by kind of money, its credit grants, its transactions.

Values read back from Redis (the wallet hash, the grants, the transactions stream) and turned
into the admin and client API's JSON; the money moves themselves are in :mod:`.wallet`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.billing.ledger import returned_lots
from gateway.billing.timestamps import utc_ms
from gateway.store.replies import as_text
from pricing import format_usd

NEVER = "9999999999999"  # a grant's end in its order member when it has none (billing/lua)


@dataclass(frozen=True, slots=True)
class Transaction:
    id: str
    type: str
    amount: int
    order_id: str
    balance: int
    created_ms: int
    note: str
    receipt_number: int | None = None  # a top-up's
    topups: tuple[tuple[str, int], ...] = ()  # a refund's: (top-up order id, amount) returned
    operator: str = ""  # an adjustment's

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "type": self.type,
            "amount": format_usd(self.amount),
            "order_id": self.order_id,
            "balance_after": format_usd(self.balance),
            "created_at": utc_ms(self.created_ms, millis=True),
            "note": self.note,
        }
        if self.receipt_number is not None:
            out["receipt_number"] = self.receipt_number
        if self.type == "refund":
            out["topups"] = [{"order_id": o or None, "amount": format_usd(n)}
                             for o, n in self.topups]  # fmt: skip
        if self.type == "adjustment":
            out["reason"], out["operator"] = self.note, self.operator
        return out


@dataclass(frozen=True, slots=True)
class Grant:
    """A credit grant as the wallet shows it."""

    id: str
    remaining: int
    ends_ms: int  # 0: never
    priority: int

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "remaining": format_usd(self.remaining),
                "expires_at": utc_ms(self.ends_ms, millis=True) if self.ends_ms else None,
                "priority": self.priority}  # fmt: skip


@dataclass(frozen=True, slots=True)
class WalletView:
    cash: int
    held: int
    topups: int
    refunds: int
    charges: int
    month_spend: int
    free_ai: int = 0
    free_cloud: int = 0
    grants: tuple[Grant, ...] = ()
    now_ms: int = 0  # Redis's clock when read: grants past their end are not spendable

    @property
    def credits(self) -> int:
        return sum(g.remaining for g in self.grants)

    @property
    def ending(self) -> int:
        """Credits of grants past their end (they back no new request; docs/wallet.md)."""
        return sum(g.remaining for g in self.grants if 0 < g.ends_ms <= self.now_ms)

    @property
    def balance(self) -> int:
        """Spendable now by an AI request."""
        return self.cash + self.free_ai + self.credits - self.ending - self.held

    def to_json(self) -> dict[str, object]:
        return {
            "balance": format_usd(self.balance),
            "cash": format_usd(self.cash),
            "credits": format_usd(self.credits - self.ending),
            "free_quota": format_usd(self.free_ai + self.free_cloud),
            "held": format_usd(self.held),
            "month_spend": format_usd(self.month_spend),
            "credit_grants": [g.to_json() for g in self.live_grants()],
            "free_quota_by_category": {
                "ai": format_usd(self.free_ai),
                "cloud": format_usd(self.free_cloud),
            },
        }

    def live_grants(self) -> list[Grant]:
        return [g for g in self.grants if not 0 < g.ends_ms <= self.now_ms]


def month_field(now: float) -> str:
    """The wallet field of the month ``now`` (seconds, from Redis's clock) falls in."""
    return "spend:" + time.strftime("%Y-%m", time.gmtime(now))


def flatten_fields(fields: Mapping[Any, Any]) -> list[Any]:
    out: list[Any] = []
    for name, value in fields.items():
        out += [name, value]
    return out


def transaction_from(entry_id: str, flat: Sequence[Any]) -> Transaction:
    f = {as_text(flat[i]): as_text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
    return Transaction(
        id=entry_id,
        type=f.get("type", ""),
        amount=int(f.get("amount", "0")),
        order_id=f.get("order_id", ""),
        balance=int(f.get("balance", "0")),
        created_ms=int(f.get("ts", "0")),
        note=f.get("note", ""),
        receipt_number=int(f["receipt_number"]) if "receipt_number" in f else None,
        topups=returned_lots(f.get("topups", "")),
        operator=f.get("operator", ""),
    )

