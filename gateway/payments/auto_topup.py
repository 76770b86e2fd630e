"""Automatic top-ups through the payment provider (docs/guards.md, Auto top-up).

A settle that takes an account below its auto top-up threshold records a pending order id and
emits ``wallet_balance_low`` with it. The event dispatcher hands every event to
:meth:`AutoTopUps.handle`; with a provider that can charge the account (``stripe``, and a saved
card), the charge is made at once, and its money is credited as a top-up with the event's
order id, which clears the pending request (money_move_v6). A charge that fails releases the
request at once (``auto_topup_failed_v1``: back-off, ``auto_topup_failed`` event). The
``webhook`` provider charges nothing: the event reaches the account's webhook, and the top-up
comes back through the admin API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway.billing.wallet import Wallet
from gateway.payments.payment_provider import AccountEvent, Charge, PaymentProvider
from gateway.payments.payment_records import PaymentRecords
from gateway.store.keys import AccountKeys
from gateway.store.replies import as_text
from pricing import parse_usd

log = logging.getLogger(__name__)

MAX_REASON = 500  # characters of a provider's refusal kept in the event


class AutoTopUps:
    def __init__(
        self,
        redis: Any,
        wallet: Wallet,
        provider: PaymentProvider,
        records: PaymentRecords,
        *,
        on_ledger: Callable[[str], None] | None = None,
        ledger_retention: int = 90 * 86400,
    ) -> None:
        """``on_ledger`` hears of every account whose ledger got an entry (the feed's relay)."""
        self._redis, self._wallet, self._provider, self._records = redis, wallet, provider, records
        self._on_ledger = on_ledger or (lambda _account: None)
        self._ledger_retention = ledger_retention

    async def handle(self, account_id: str, event: AccountEvent) -> None:
        """The dispatcher's hook, for every event of every account: charges the automatic
        top-up that a ``wallet_balance_low`` event asks for, once. Delivered again (at least
        once), it charges nothing more: the charge is idempotent on the order id, and an order
        no longer pending (paid, failed or timed out) is not charged at all."""
        if event.name != "wallet_balance_low":
            return
        order_id, amount = str(event.data.get("order_id", "")), event.data.get("amount")
        if not order_id or not await self.pending(account_id, order_id):
            return
        charge = await self._provider.charge(
            account_id, order_id=order_id, amount=parse_usd(amount, field="amount")
        )
        if charge.state == "paid":
            await self.credit(account_id, order_id, charge)
        elif charge.state == "failed":
            await self.failed(account_id, order_id, charge.reason)

    async def pending(self, account_id: str, order_id: str) -> bool:
        """Whether ``order_id`` is the account's pending automatic top-up."""
        pending = await self._redis.hget(AccountKeys(account_id).wallet, "auto_pending")
        return pending is not None and as_text(pending).startswith(order_id + "|")

    async def credit(self, account_id: str, order_id: str, charge: Charge) -> bool:
        """The money of a paid charge, in: a top-up with the request's order id, once; True
        when it was in already."""
        await self._records.remember_payment(account_id, order_id, charge.payment)
        _, replayed = await self._wallet.move_money(
            account_id, kind="topup", amount=charge.amount, order_id=order_id,
            note=f"automatic top-up, {self._provider.name} payment {charge.payment}",
        )  # fmt: skip
        if not replayed:
            log.info("automatic top-up %s of account %s paid (%s)", order_id, account_id,
                     charge.payment)  # fmt: skip
        return replayed

    async def failed(self, account_id: str, order_id: str, reason: str) -> bool:
        """Release the pending request ``order_id`` after its charge failed: the next one waits
        a back-off (1 h, doubling to 24 h), and ``auto_topup_failed`` says why. False when it
        was not pending (a repeat): nothing changes."""
        k = AccountKeys(account_id)
        released = await self._wallet.scripts.call(
            "auto_topup_failed_v1", [k.wallet, k.ledger],
            [order_id, reason[:MAX_REASON], self._ledger_retention],
        )  # fmt: skip
        if int(released):
            self._on_ledger(account_id)
            log.warning("automatic top-up %s of account %s failed: %s", order_id, account_id,
                        reason)  # fmt: skip
        return bool(int(released))
