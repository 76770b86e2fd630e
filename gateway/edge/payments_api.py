"""The payment routes (gateway.payments): Stripe's webhook, and Checkout pages for top-ups.

    POST /webhooks/stripe              Stripe's events, signed (Stripe-Signature); 404 when this
                                       gateway has no Stripe configured
    POST /admin/accounts/{id}/checkout a Checkout Session for a top-up of the account (admin)
    POST /v1/account/checkout          the same for the caller's own account (an owner's key)

A checkout is ``{"amount": "25.00", "success_url", "cancel_url"}`` and answers 201 ``{"id",
"url"}``: the customer pays at ``url``, and the top-up arrives with Stripe's event (order id:
the session's id). It is refused as a top-up through the admin API would be (403
``plan_cannot_top_up``, 400 outside the plan's bounds), and with 409
``payments_not_configured`` when no payment provider takes payments.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from gateway import errors
from gateway.billing.accounts import Directory
from gateway.edge.access import check_owner
from gateway.edge.admin_fields import amount_field
from gateway.edge.auth import Authenticator
from gateway.edge.httpjson import json_object, json_response, read_body
from gateway.payments.payment_provider import cents
from gateway.payments.service import Payments

WEBHOOK_BODY_LIMIT = 1024 * 1024  # a Stripe event is a few KB; a session with items, more
MAX_URL = 2048


class PaymentsApi:
    def __init__(
        self,
        *,
        payments: Payments,
        check_admin: Callable[[web.Request], Awaitable[str]],
        check_topup: Callable[[str, int], Awaitable[None]],
        directory: Directory,
        auth: Authenticator,
    ) -> None:
        """``check_admin`` is the admin API's token check; ``check_topup(account, amount)``
        its plan rules for a top-up (403 / 400)."""
        self._payments, self._check_admin, self._check_topup = payments, check_admin, check_topup
        self._directory, self._auth = directory, auth

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.post("/webhooks/stripe", self.stripe_webhook),
            web.post("/admin/accounts/{id}/checkout", self.admin_checkout),
            web.post("/v1/account/checkout", self.my_checkout),
        ]

    async def stripe_webhook(self, request: web.Request) -> web.Response:
        """One Stripe event: applied once its signature checks (400 when it does not, or is
        older than 300 s: nothing is done)."""
        stripe = self._payments.stripe
        if stripe is None:
            raise errors.NotFound("Stripe payments are not configured on this gateway.")
        body = await read_body(request, WEBHOOK_BODY_LIMIT, within=30.0)
        event = stripe.construct_event(body, request.headers.get("Stripe-Signature"))
        return json_response(await self._payments.stripe_events.handle(event))

    async def admin_checkout(self, request: web.Request) -> web.Response:
        await self._check_admin(request)
        account_id = request.match_info["id"]
        await self._directory.get_account(account_id)  # 404 before the body is read
        return await self._checkout(request, account_id)

    async def my_checkout(self, request: web.Request) -> web.Response:
        caller = await self._auth.authenticate(request)
        check_owner(caller)
        return await self._checkout(request, caller.account.id)

    async def _checkout(self, request: web.Request, account_id: str) -> web.Response:
        body = await json_object(request)
        amount = amount_field(body)
        cents(amount)  # Stripe charges whole cents
        success_url, cancel_url = _url(body, "success_url"), _url(body, "cancel_url")
        account = await self._directory.get_account(account_id)
        if account.status == "closed":
            raise errors.AccountClosed("This account is closed; it takes no more top-ups.")
        await self._check_topup(account_id, amount)
        link = await self._payments.provider.checkout(
            account_id, amount, success_url=success_url, cancel_url=cancel_url
        )
        return json_response(link.to_json(), status=201)


def _url(body: dict[str, object], name: str) -> str:
    value = body.get(name)
    ok = isinstance(value, str) and len(value) <= MAX_URL and value.isprintable()
    if ok:
        try:
            parts = urlsplit(str(value))
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
    if not ok:
        raise errors.InvalidRequest(
            f"'{name}' must be an http:// or https:// URL (at most {MAX_URL} characters): "
            "where Stripe sends the customer after paying (or not).", param=name)  # fmt: skip
    return str(value)
