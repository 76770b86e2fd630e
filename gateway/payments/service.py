"""The payments of one gateway, put together from its config: the provider, the handler of
Stripe's events, the automatic top-ups' event hook and the refunds that go through the
provider. ``create_app`` builds one and wires it (routes: gateway.edge.payments_api)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.billing.accounts import Directory
from gateway.billing.wallet import Wallet
from gateway.payments.auto_topup import AutoTopUps
from gateway.payments.config import PaymentsConfig
from gateway.payments.payment_provider import PaymentProvider, WebhookProvider
from gateway.payments.payment_records import PaymentRecords
from gateway.payments.refunds import ProviderRefunds
from gateway.payments.stripe_events import StripeEvents
from gateway.payments.stripe_provider import StripeProvider


class Payments:
    def __init__(
        self,
        config: PaymentsConfig,
        *,
        redis: Any,
        wallet: Wallet,
        directory: Directory,
        on_ledger: Callable[[str], None] | None = None,
        ledger_retention: int = 90 * 86400,
    ) -> None:
        """``on_ledger`` hears of every account whose ledger got an entry (the feed's relay)."""
        records = PaymentRecords(redis)
        self.stripe = StripeProvider(config.stripe, directory) if config.stripe else None
        self.provider: PaymentProvider = self.stripe or WebhookProvider()
        self.auto_topups = AutoTopUps(redis, wallet, self.provider, records, on_ledger=on_ledger,
                                      ledger_retention=ledger_retention)  # fmt: skip
        self.refunds = ProviderRefunds(redis, wallet, self.provider, records)
        self.stripe_events = StripeEvents(redis, wallet, directory, self.auto_topups, records)

    async def running(self, _app: object) -> AsyncIterator[None]:
        """The provider's connection, open while the app runs (an aiohttp ``cleanup_ctx``)."""
        if self.stripe is None:
            yield
            return
        async with self.stripe.connected():
            yield
