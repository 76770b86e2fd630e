"""The ``stripe`` payment provider: Checkout pages, off-session charges and refunds, through
the official ``stripe`` library's ``StripeClient`` (no module globals), over aiohttp.

``api_base`` (config ``payments.stripe.api_base``) moves every API call to another address,
which is how the tests point it at a fake (tests/support/fake_stripe.py). Stripe takes USD in
cents; amounts come in as nanodollars and are converted exactly (``payment_provider.cents``).

Idempotency keys are Stripe's per Stripe account, while order ids are ours per Tollgate
account (every account has an ``auto_1``), so each key names the account as well.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import stripe

from gateway import errors
from gateway.billing.accounts import Directory
from gateway.payments.config import StripeConfig
from gateway.payments.payment_provider import (
    NANODOLLARS_PER_CENT,
    Charge,
    CheckoutLink,
    cents,
    cents_up,
)

log = logging.getLogger(__name__)

CURRENCY = "usd"
PRODUCT = "Wallet top-up"
RETRIES = 2  # network failures and Stripe's 409/5xx, with the same idempotency key


def idempotency_key(account_id: str, kind: str, order_id: str) -> str:
    """The Stripe idempotency key of an account's order: unique across accounts."""
    return f"tollgate:{account_id}:{kind}:{order_id}"


class StripeProvider:
    name = "stripe"

    def __init__(
        self, config: StripeConfig, directory: Directory, *, timeout: float = 30.0
    ) -> None:
        """``directory`` has the accounts' saved customer and card."""
        self.config, self._directory = config, directory
        self._timeout = timeout
        self._client: stripe.StripeClient | None = None

    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[None]:
        """The HTTP session to Stripe, open while the app runs."""
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout)
        ) as session:
            self._client = stripe.StripeClient(
                self.config.secret_key,
                base_addresses={"api": self.config.api_base} if self.config.api_base else None,
                http_client=stripe.AIOHTTPClient(session=session),
                max_network_retries=RETRIES,
            )
            try:
                yield
            finally:
                self._client = None

    @property
    def client(self) -> stripe.StripeClient:
        if self._client is None:
            raise errors.PaymentProviderError("The gateway is not connected to Stripe yet.")
        return self._client

    def construct_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event a webhook delivered, as plain JSON values, once ``Stripe-Signature`` is
        found to be Stripe's (the endpoint's secret, at most 300 s old); else InvalidRequest."""
        try:
            event = self.client.construct_event(
                payload, signature, self.config.webhook_secret, stripe.Webhook.DEFAULT_TOLERANCE
            )
        except stripe.SignatureVerificationError as exc:
            raise errors.InvalidRequest(
                f"Stripe-Signature does not verify: {exc.user_message}", param="Stripe-Signature"
            ) from None
        except ValueError:  # the body is not JSON (signed or not)
            raise errors.InvalidRequest("The body is not a Stripe event.") from None
        return event.to_dict()

    async def checkout(
        self, account_id: str, amount: int, *, success_url: str, cancel_url: str
    ) -> CheckoutLink:
        try:
            session = await self.client.v1.checkout.sessions.create_async({
                "mode": "payment",
                "line_items": [{"quantity": 1, "price_data": {
                    "currency": CURRENCY, "unit_amount": cents(amount),
                    "product_data": {"name": PRODUCT}}}],
                "client_reference_id": account_id,
                "metadata": {"account_id": account_id},
                # Not the auto top-ups' metadata (no order_id): their events ignore this one.
                "payment_intent_data": {"metadata": {"account_id": account_id}},
                "success_url": success_url,
                "cancel_url": cancel_url,
            })  # fmt: skip
        except stripe.StripeError as exc:
            raise _gateway_error(exc, "create a Checkout Session") from None
        if not session.url:
            raise errors.PaymentProviderError("Stripe made a Checkout Session without a URL.")
        return CheckoutLink(session.id, session.url)

    async def charge(self, account_id: str, *, order_id: str, amount: int) -> Charge:
        """Charge ``amount`` (rounded up to the cent) off-session to the account's saved card
        (``stripe_customer_id``, ``stripe_payment_method``); skipped when it has none."""
        account = await self._directory.get_account(account_id)
        customer, payment_method = account.stripe_customer_id, account.stripe_payment_method
        if not customer or not payment_method:
            return Charge("skipped")
        try:
            intent = await self.client.v1.payment_intents.create_async(
                {
                    "amount": cents_up(amount),
                    "currency": CURRENCY,
                    "customer": customer,
                    "payment_method": payment_method,
                    "off_session": True,
                    "confirm": True,
                    "metadata": {"account_id": account_id, "order_id": order_id},
                    "description": f"{PRODUCT} {order_id}",
                },
                {"idempotency_key": idempotency_key(account_id, "charge", order_id)},
            )
        except (stripe.CardError, stripe.InvalidRequestError) as exc:
            # Declined, needs the customer (3-D Secure), or the saved card is gone: the
            # same answer next time, so the request fails now and backs off.
            return Charge("failed", reason=_reason(exc))
        except stripe.StripeError as exc:
            raise _gateway_error(exc, "charge a saved card") from None
        if intent.status == "succeeded":
            return Charge("paid", intent.id, intent.amount_received * NANODOLLARS_PER_CENT)
        if intent.status in ("requires_action", "requires_payment_method", "canceled"):
            return Charge("failed", intent.id, reason=f"the payment {intent.status}")
        return Charge("pending", intent.id)  # processing: its event will say

    async def refund(self, account_id: str, *, payment: str, amount: int, order_id: str) -> str:
        try:
            made = await self.client.v1.refunds.create_async(
                {"payment_intent": payment, "amount": cents(amount),
                 "metadata": {"account_id": account_id, "order_id": order_id}},
                {"idempotency_key": idempotency_key(account_id, "refund", order_id)},
            )  # fmt: skip
        except stripe.StripeError as exc:
            raise _gateway_error(exc, f"refund {payment}") from None
        if made.status in ("failed", "canceled"):
            raise errors.PaymentRefused(f"Stripe's refund {made.id} {made.status}; nothing was "
                                        "refunded.")  # fmt: skip
        return made.id


def _reason(exc: stripe.StripeError) -> str:
    """Stripe's words for a refusal, e.g. "Your card was declined. (card_declined)"."""
    message = exc.user_message or type(exc).__name__
    return f"{message} ({exc.code})" if exc.code else message


def _gateway_error(exc: stripe.StripeError, doing: str) -> errors.GatewayError:
    """A refusal (Stripe said no: 400) or a failure (Stripe could not be asked: 502)."""
    if isinstance(exc, stripe.CardError | stripe.InvalidRequestError):
        return errors.PaymentRefused(f"Stripe refused to {doing}: {_reason(exc)}")
    log.warning("Stripe failed to %s: %r", doing, exc)
    return errors.PaymentProviderError(
        f"Stripe could not {doing} ({type(exc).__name__}); nothing was done, try again."
    )
