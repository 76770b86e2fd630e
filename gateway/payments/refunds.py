"""Refunds of top-ups that a payment provider brought in: the money goes back through the
provider first, and the wallet's refund is recorded after, naming the provider's refund.

``POST /admin/accounts/{id}/refunds`` with a ``topup`` whose payment is known (a Stripe
Checkout session's or an automatic top-up's, :mod:`.payment_records`) is made by
:meth:`ProviderRefunds.refund`: through the provider first (in whole cents; idempotent on the
refund's order id), then in the wallet, with a note naming the provider's refund (``Stripe
refund re_...``, the ledger entry's ``n``). If the provider refuses, nothing is refunded. A
refund without ``topup``, or of a top-up paid some other way, is only recorded, as before.

The one gap: the provider refunds before the wallet's own checks run, so a refund the wallet
then refuses (the top-up's cash was spent meanwhile, or open requests hold it) leaves the
provider's refund made and the wallet's not: the error says so, names the provider's refund,
and the same request sent again (the same order id) records it without refunding twice.
Asking for no more than the top-up has left (its cash lot, checked here first) avoids most
of it.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway import errors
from gateway.billing.wallet import Wallet
from gateway.billing.wallet_view import Transaction
from gateway.payments.payment_provider import PaymentProvider, cents
from gateway.payments.payment_records import PaymentRecords
from gateway.store.keys import AccountKeys
from gateway.store.replies import as_text
from pricing import format_usd

log = logging.getLogger(__name__)


class ProviderRefunds:
    def __init__(
        self, redis: Any, wallet: Wallet, provider: PaymentProvider, records: PaymentRecords
    ) -> None:
        self._redis, self._wallet = redis, wallet
        self._provider, self._records = provider, records

    async def refund(
        self, account_id: str, *, kind: str, amount: int, order_id: str, note: str = "",
        topup: str = "",
    ) -> tuple[Transaction, bool]:  # fmt: skip
        """``Wallet.move_money`` for a refund of the top-up ``topup``: through its provider
        first when it has one. (transaction, replayed)."""
        note = await self._through_provider(account_id, topup, amount, order_id, note)
        try:
            return await self._wallet.move_money(account_id, kind=kind, amount=amount,
                                                 order_id=order_id, note=note, topup=topup)
        except errors.GatewayError as exc:
            refund_id = await self._records.refund(account_id, order_id)
            if refund_id is None:
                raise
            log.error("refund %s of account %s: %s refunded %s but the wallet refused: %s",
                      order_id, account_id, self._provider.name, refund_id, exc.message)
            raise errors.Conflict(
                f"{self._provider.name.capitalize()} refunded {format_usd(amount)} USD "
                f"({refund_id}) but the wallet refused to record it: {exc.message} Send the "
                "same request again (the same order_id) once that is resolved: it records the "
                "refund without refunding twice.", param=exc.param) from None  # fmt: skip

    async def _through_provider(
        self, account_id: str, topup: str, amount: int, order_id: str, note: str
    ) -> str:
        """Refund through the top-up's provider, if it has one; the wallet refund's note."""
        payment = await self._records.payment(account_id, topup) if topup else None
        if payment is None or await self._redis.exists(AccountKeys(account_id).order(order_id)):
            return note  # not a provider's payment, or a replay (the wallet answers it)
        cents(amount)  # 400 before anything is sent: the provider refunds whole cents
        refund_id = await self._records.refund(account_id, order_id)
        if refund_id is None:
            await self._check_left(account_id, topup, amount)
            refund_id = await self._provider.refund(
                account_id, payment=payment, amount=amount, order_id=order_id
            )
            await self._records.remember_refund(account_id, order_id, refund_id)
            log.info("refund %s of account %s: %s refund %s of %s", order_id, account_id,
                     self._provider.name, refund_id, payment)  # fmt: skip
        said = f"{self._provider.name.capitalize()} refund {refund_id}"
        return f"{said}: {note}" if note else said

    async def _check_left(self, account_id: str, topup: str, amount: int) -> None:
        """Refuse more than the top-up's cash lot holds ("left|refundable", docs/wallet.md).
        The lot may still count cash spent since the last money move, so this is the
        ceiling, not the last word (the wallet's own refund is)."""
        lot = await self._redis.hget(AccountKeys(account_id).cash_lots, f"t:{topup}")
        left = int(as_text(lot).partition("|")[0]) if lot is not None else 0
        if amount > left:
            raise errors.InvalidRequest(
                f"A refund of {format_usd(amount)} USD exceeds what the top-up {topup!r} has "
                f"left unspent and unrefunded, {format_usd(left)} USD; nothing was refunded.",
                param="amount")  # fmt: skip
