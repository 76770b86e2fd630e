"""Which payment each top-up came from, and each refund made of one (the account's
``payments`` hash, gateway.store.keys): a refund of a top-up goes back through the payment
that brought it in, and a refund asked for again reuses the provider's refund made the first
time rather than making a second one."""

from __future__ import annotations

from typing import Any

from gateway.store.keys import AccountKeys
from gateway.store.replies import as_text


class PaymentRecords:
    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def _get(self, account_id: str, name: str) -> str | None:
        value = await self._redis.hget(AccountKeys(account_id).payments, name)
        return as_text(value) if value is not None else None

    async def remember_payment(self, account_id: str, order_id: str, payment: str) -> None:
        """The top-up ``order_id`` is (or will be) the money of the provider's ``payment``."""
        if payment:
            await self._redis.hset(AccountKeys(account_id).payments, f"p:{order_id}", payment)

    async def payment(self, account_id: str, order_id: str) -> str | None:
        """The provider's payment that the top-up ``order_id`` came from; None: not known."""
        return await self._get(account_id, f"p:{order_id}")

    async def remember_refund(self, account_id: str, order_id: str, refund: str) -> None:
        await self._redis.hset(AccountKeys(account_id).payments, f"r:{order_id}", refund)

    async def refund(self, account_id: str, order_id: str) -> str | None:
        """The provider's refund made for the refund ``order_id``; None: none yet."""
        return await self._get(account_id, f"r:{order_id}")
