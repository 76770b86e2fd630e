"""Vouchers: codes an operator makes, each worth a credit grant, redeemed by customers.

A code has an amount, how many accounts may redeem it, an optional last day to redeem it, and
an optional end for the credit it grants. Redeeming takes one use in one Lua call on the code's
own keys (so fifty accounts racing for the last use get one), then grants the credit in the
account's wallet with the order id ``voucher-<code>``: idempotent, so a redemption interrupted
between the two steps is completed by trying again, and never granted twice.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from gateway import errors
from gateway.billing.timestamps import utc_ms
from gateway.billing.wallet import Wallet
from gateway.billing.wallet_view import Transaction
from gateway.store.keys import voucher, voucher_redeemed
from pricing import format_usd

CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{2,63}")
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are typed by people


def new_code() -> str:
    groups = ["".join(secrets.choice(ALPHABET) for _ in range(4)) for _ in range(3)]
    return "TG-" + "-".join(groups)


def _when(ms: int) -> str | None:
    return utc_ms(ms) if ms else None


@dataclass(frozen=True, slots=True)
class Voucher:
    code: str
    amount: int
    max_redemptions: int
    valid_until_ms: int = 0
    credit_ends_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "amount": format_usd(self.amount),
                "max_redemptions": self.max_redemptions,
                "valid_until": _when(self.valid_until_ms),
                "credit_expires_at": _when(self.credit_ends_ms)}  # fmt: skip


class Vouchers:
    def __init__(self, redis: Any, wallet: Wallet) -> None:
        self._redis = redis
        self._wallet = wallet

    async def create(self, made: Voucher) -> Voucher:
        """Store a new voucher (``made.code`` empty: a fresh code)."""
        code = made.code or new_code()
        made = Voucher(code, made.amount, made.max_redemptions, made.valid_until_ms,
                       made.credit_ends_ms)  # fmt: skip
        stored = await self._redis.hsetnx(voucher(code), "amount", str(made.amount))
        if not stored:
            raise errors.Conflict(f"A voucher {code!r} exists already.", param="code")
        await self._redis.hset(voucher(code), mapping={
            "max_redemptions": str(made.max_redemptions), "used": "0",
            "valid_until_ms": str(made.valid_until_ms),
            "credit_ends_ms": str(made.credit_ends_ms)})  # fmt: skip
        return made

    async def redeem(self, account_id: str, code: str) -> Transaction:
        """Grant ``code``'s credit to the account, once; VoucherInvalid when it cannot."""
        code = code.strip().upper()
        if not CODE.fullmatch(code):
            raise errors.VoucherInvalid("This voucher code does not exist.", param="code")
        r = (await self._wallet.scripts.call(
            "voucher_redeem_v2", [voucher(code), voucher_redeemed(code)],
            [account_id, self._wallet.clock_arg()]
        )).split()  # fmt: skip
        status, amount, ends = int(r[0]), int(r[1]), int(r[2])
        if status < 0:
            why = {-1: "does not exist", -2: "is past its last day",
                   -3: "has been used up"}[status]  # fmt: skip
            raise errors.VoucherInvalid(f"This voucher code {why}.", param="code")
        txn, replayed = await self._wallet.move_money(
            account_id, kind="credit", amount=amount, order_id=f"voucher-{code}",
            note=f"voucher {code}", ends_ms=ends)  # fmt: skip
        if status == 0 and replayed:
            raise errors.VoucherInvalid("This account has redeemed this voucher already.",
                                        param="code")  # fmt: skip
        return txn
