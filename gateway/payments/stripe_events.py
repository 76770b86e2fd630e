"""What Stripe's events (their signatures checked, gateway.payments.stripe_provider) do to the
wallets: the payments in, once each.

* ``checkout.session.completed`` (and ``checkout.session.async_payment_succeeded``, for
  payment methods that settle later), once ``payment_status`` is ``paid``: a top-up of
  ``amount_total`` cents for the account ``client_reference_id``, whose order id is the
  session's id. A payment that happened is credited whatever the account's plan says
  (``can_top_up``, ``topup_min``/``topup_max`` bound what may be *asked* for: a checkout
  refuses them beforehand); the operator may refund it.
* ``payment_intent.succeeded`` with ``metadata.account_id`` and ``metadata.order_id`` (an
  automatic top-up's charge): a top-up of ``amount_received`` with that order id, which clears
  the pending request.
* ``payment_intent.payment_failed`` (the same metadata): the request is released, with a
  back-off (``auto_topup_failed``).
* anything else: acknowledged, ignored.

Each event is handled once per event id (remembered ``EVENT_MEMORY`` seconds, past Stripe's
three days of retries), and each payment credited once whichever events report it (the
order id is the payment's own). USD only: an event in another currency is refused (400),
nothing credited.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gateway import errors
from gateway.billing.accounts import Directory
from gateway.billing.wallet import Wallet
from gateway.payments.auto_topup import AutoTopUps
from gateway.payments.payment_provider import NANODOLLARS_PER_CENT, Charge
from gateway.payments.payment_records import PaymentRecords
from gateway.store.keys import stripe_event

log = logging.getLogger(__name__)

EVENT_MEMORY = 30 * 86400
CHECKOUT_PAID = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


class StripeEvents:
    def __init__(
        self,
        redis: Any,
        wallet: Wallet,
        directory: Directory,
        auto_topups: AutoTopUps,
        records: PaymentRecords,
    ) -> None:
        self._redis, self._wallet, self._directory = redis, wallet, directory
        self._auto, self._records = auto_topups, records
        self._handlers: dict[str, Callable[[Mapping[str, Any]], Awaitable[str]]] = {
            **dict.fromkeys(CHECKOUT_PAID, self._checkout_paid),
            "payment_intent.succeeded": self._intent_paid,
            "payment_intent.payment_failed": self._intent_failed,
        }

    async def handle(self, event: Mapping[str, Any]) -> dict[str, object]:
        """Apply a verified event; the webhook's answer. Raises GatewayError (4xx: Stripe
        shows it and retries) when it cannot be applied; nothing is credited then."""
        event_id, kind = event.get("id"), event.get("type")
        if not isinstance(event_id, str) or not event_id or not isinstance(kind, str):
            raise errors.InvalidRequest("A Stripe event needs its 'id' and 'type'.")
        seen = stripe_event(event_id)
        if await self._redis.exists(seen):
            return {"received": True, "outcome": "replayed"}
        handler = self._handlers.get(kind)
        outcome = "ignored"
        if handler is not None:
            data = event.get("data")
            found = data.get("object") if isinstance(data, Mapping) else None
            if not isinstance(found, Mapping):
                raise errors.InvalidRequest(f"The {kind} event {event_id} has no data.object.")
            outcome = await handler(found)
        await self._redis.set(seen, kind, ex=EVENT_MEMORY)
        return {"received": True, "outcome": outcome}

    async def _checkout_paid(self, session: Mapping[str, Any]) -> str:
        account_id, session_id = session.get("client_reference_id"), session.get("id")
        if not isinstance(account_id, str) or not account_id or not isinstance(session_id, str):
            return "ignored: not a Tollgate checkout (no client_reference_id)"
        if session.get("payment_status") != "paid":
            return "ignored: not paid yet"
        amount = _usd_cents(session, "amount_total", session_id)
        if amount == 0:
            return "ignored: nothing paid"
        await self._directory.get_account(account_id)  # 404: Stripe retries, nothing lost
        await self._records.remember_payment(account_id, session_id,
                                             _id_of(session.get("payment_intent")))  # fmt: skip
        _, replayed = await self._wallet.move_money(
            account_id, kind="topup", amount=amount, order_id=session_id,
            note=f"Stripe Checkout {session_id}",
        )  # fmt: skip
        return "replayed" if replayed else "credited"

    async def _intent_paid(self, intent: Mapping[str, Any]) -> str:
        found = _auto_order(intent)
        if found is None:
            return "ignored: not an automatic top-up"
        account_id, order_id, intent_id = found
        amount = _usd_cents(intent, "amount_received", intent_id)
        await self._directory.get_account(account_id)
        replayed = await self._auto.credit(account_id, order_id, Charge("paid", intent_id, amount))
        return "replayed" if replayed else "credited"

    async def _intent_failed(self, intent: Mapping[str, Any]) -> str:
        found = _auto_order(intent)
        if found is None:
            return "ignored: not an automatic top-up"
        account_id, order_id, _ = found
        error = intent.get("last_payment_error")
        reason = "the payment failed"
        if isinstance(error, Mapping) and error.get("message"):
            reason = str(error["message"]) + (f" ({error['code']})" if error.get("code") else "")
        released = await self._auto.failed(account_id, order_id, reason)
        return "released" if released else "ignored: not pending"


def _auto_order(intent: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(account id, order id, payment intent id) of an automatic top-up's PaymentIntent."""
    metadata = intent.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    account_id, order_id = metadata.get("account_id"), metadata.get("order_id")
    if not (isinstance(account_id, str) and account_id and isinstance(order_id, str)
            and order_id):  # fmt: skip
        return None
    return account_id, order_id, _id_of(intent)


def _usd_cents(obj: Mapping[str, Any], name: str, what: str) -> int:
    """``obj[name]``, cents of USD, in nanodollars; another currency is refused."""
    currency = obj.get("currency")
    if currency != "usd":
        log.warning("Stripe payment %s in %r refused: wallets are USD", what, currency)
        raise errors.InvalidRequest(
            f"The payment {what} is in {str(currency).upper()!s}; Tollgate's wallets take USD "
            "only, so nothing was credited (refund it in Stripe).", param="currency")  # fmt: skip
    amount = obj.get(name)
    if type(amount) is not int or amount < 0:
        raise errors.InvalidRequest(f"The payment {what} has no '{name}' in cents.", param=name)
    return amount * NANODOLLARS_PER_CENT


def _id_of(value: object) -> str:
    """A Stripe id, whether the field holds it or its expanded object."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else ""
