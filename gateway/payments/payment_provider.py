"""The payment-provider interface, its plain values, and the ``webhook`` provider.

A provider moves real money; the wallet learns of it from the provider's answer or event and
credits it with ``Wallet.move_money``, once per order id. Amounts are nanodollars here as
everywhere; a provider that charges in cents converts with :func:`cents` (exact, or refused:
a sub-cent amount is not something a card can be charged or refunded).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway import errors
from pricing import format_usd

NANODOLLARS_PER_CENT = 10**7


def cents(amount: int, *, param: str = "amount") -> int:
    """``amount`` (nanodollars) in US cents, exactly; InvalidRequest when it is not whole cents."""
    whole, rest = divmod(amount, NANODOLLARS_PER_CENT)
    if rest:
        raise errors.InvalidRequest(
            f"{format_usd(amount)} USD is not a whole number of cents; payments are made in "
            "cents.", param=param)  # fmt: skip
    return whole


def cents_up(amount: int) -> int:
    """``amount`` (nanodollars) in US cents, rounded up (an automatic top-up's charge)."""
    return -(-amount // NANODOLLARS_PER_CENT)


@dataclass(frozen=True, slots=True)
class CheckoutLink:
    """A hosted payment page: its provider id and where to send the customer."""

    id: str
    url: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "url": self.url}


@dataclass(frozen=True, slots=True)
class Charge:
    """What became of an automatic top-up's charge: ``state`` "paid" (``amount``, nanodollars,
    is in), "pending" (its event will say), "failed" (``reason``) or "skipped" (no saved means
    of payment: the account's webhook has the event, the operator tops up)."""

    state: str
    payment: str = ""  # the provider's payment id
    amount: int = 0
    reason: str = ""


class AccountEvent(Protocol):
    """An event of an account's ledger as the dispatcher hands it on (docs/guards.md)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Event:
    """A plain :class:`AccountEvent`."""

    id: str
    name: str
    data: Mapping[str, Any]


class PaymentProvider(Protocol):
    name: str

    async def checkout(
        self, account_id: str, amount: int, *, success_url: str, cancel_url: str
    ) -> CheckoutLink:
        """A payment page for a top-up of ``amount``; its top-up arrives with its event."""
        ...

    async def charge(self, account_id: str, *, order_id: str, amount: int) -> Charge:
        """Charge an automatic top-up (``wallet_balance_low``) with the account's saved means
        of payment; idempotent on (account, ``order_id``)."""
        ...

    async def refund(self, account_id: str, *, payment: str, amount: int, order_id: str) -> str:
        """Return ``amount`` of the payment ``payment``; the provider's refund id. Idempotent
        on (account, ``order_id``). Raises PaymentRefused when the provider says no."""
        ...


class WebhookProvider:
    """No provider of our own: the operator's system takes the payments. The
    ``wallet_balance_low`` event reaches it through the account's webhook and the top-up comes
    back through ``POST /admin/accounts/{id}/topups`` with the event's ``order_id``."""

    name = "webhook"

    async def checkout(
        self, account_id: str, amount: int, *, success_url: str, cancel_url: str
    ) -> CheckoutLink:
        raise errors.PaymentsNotConfigured(
            "Payments are not configured on this gateway (config payments.stripe): top up "
            "through POST /admin/accounts/{id}/topups instead.")  # fmt: skip

    async def charge(self, account_id: str, *, order_id: str, amount: int) -> Charge:
        return Charge("skipped")

    async def refund(self, account_id: str, *, payment: str, amount: int, order_id: str) -> str:
        raise errors.PaymentsNotConfigured(
            f"The payment {payment!r} was taken through a payment provider that this "
            "gateway is not configured for (config payments.stripe); it cannot be refunded "
            "here.")  # fmt: skip
