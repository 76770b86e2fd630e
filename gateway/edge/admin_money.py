"""The admin API's money routes: top-ups, refunds, adjustments, credits, vouchers, the wallet
and its transactions. Every move is one Lua call, idempotent on its ``order_id``."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from gateway import errors
from gateway.billing.accounts import Directory
from gateway.billing.display_units import with_display
from gateway.billing.plans import BUILT_IN as BUILT_IN_PLANS
from gateway.billing.plans import Plan
from gateway.billing.vouchers import CODE as VOUCHER_CODE
from gateway.billing.vouchers import Voucher, Vouchers
from gateway.billing.wallet import MAX_UNITS, Wallet
from gateway.edge.admin_fields import (
    amount_field,
    expiry_field,
    is_ledger_cursor,
    query_limit,
    time_param,
)
from gateway.edge.httpjson import json_object, json_response, string_field
from pricing import parse_usd

TXN_TYPES = frozenset({"topup", "refund", "credit", "credit_expired", "adjustment"})
TXN_COLUMNS = ("id", "type", "amount", "order_id", "balance_after", "created_at", "note",
               "receipt_number", "operator")  # fmt: skip


class MoneyRoutes:
    def __init__(
        self,
        check: Callable[[web.Request], Awaitable[str]],
        directory: Directory,
        wallet: Wallet,
        plans: Mapping[str, Plan],
        vouchers: Vouchers,
    ) -> None:
        self._check, self._directory, self._wallet = check, directory, wallet
        self._plans, self._vouchers = plans, vouchers
        # A refund naming its top-up, as Wallet.move_money makes it; the app sets the payment
        # provider's (gateway.payments.refunds), which returns the money through it first.
        self.refund_topup: Callable[..., Awaitable[Any]] = wallet.move_money

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.post("/admin/accounts/{id}/topups", self.topup),
            web.post("/admin/accounts/{id}/refunds", self.refund),
            web.post("/admin/accounts/{id}/adjustments", self.adjustment),
            web.post("/admin/accounts/{id}/credits", self.credit),
            web.post("/admin/vouchers", self.create_voucher),
            web.get("/admin/accounts/{id}/wallet", self.wallet),
            web.get("/admin/accounts/{id}/transactions", self.transactions),
        ]

    async def _account(self, request: web.Request) -> str:
        """The account of the path, once the caller is known to be an operator (else 401) and
        the account to exist (else 404)."""
        await self._check(request)
        account_id = request.match_info["id"]
        await self._directory.get_account(account_id)
        return account_id

    async def _move(self, request: web.Request, kind: str) -> web.Response:
        account_id = await self._account(request)
        body = await json_object(request)
        amount = amount_field(body)
        order_id = string_field(body, "order_id")
        note = _note(body, "note")
        terms: dict[str, Any] = {}
        if kind == "topup":
            await self.check_topup(account_id, amount)
        elif kind == "credit":
            terms = _credit_terms(body, order_id)
        elif kind == "refund" and body.get("topup") is not None:
            terms["topup"] = string_field(body, "topup")
        move = self.refund_topup if "topup" in terms else self._wallet.move_money
        txn, replayed = await move(
            account_id, kind=kind, amount=amount, order_id=order_id, note=note, **terms
        )
        return json_response(txn.to_json(), status=200 if replayed else 201)

    async def check_topup(self, account_id: str, amount: int) -> None:
        """The plan's rules for a top-up of ``amount``: 403 ``plan_cannot_top_up``, 400 out of
        its bounds (a Checkout applies them too, gateway.edge.payments_api)."""
        account = await self._directory.get_account(account_id)
        plan = self._plans.get(account.plan, BUILT_IN_PLANS["default"])
        if not plan.can_top_up:
            raise errors.PlanCannotTopUp(
                f"The {plan.name!r} plan cannot top up: upgrade the account's plan (e.g. "
                "PATCH /admin/accounts/{id} with {\"plan\": \"pro\"}) to add funds.")  # fmt: skip
        problem = plan.check_topup(amount)
        if problem:
            raise errors.InvalidRequest(problem, param="amount")

    async def topup(self, request: web.Request) -> web.Response:
        """Cash in; the transaction carries the account's next receipt number."""
        return await self._move(request, "topup")

    async def refund(self, request: web.Request) -> web.Response:
        """Unused cash back: of the top-up ``topup`` names (its order id), never more than it
        has left unspent; without one, of the newest top-ups first. Cash that open requests
        hold stays."""
        return await self._move(request, "refund")

    async def credit(self, request: web.Request) -> web.Response:
        """Grant credits (a voucher, a promotion, compensation): spent before cash, highest
        priority first, then the soonest to end; what is left at ``expires_at`` leaves the
        wallet through one ``credit_expired`` entry."""
        return await self._move(request, "credit")

    async def adjustment(self, request: web.Request) -> web.Response:
        """An operator's correction of the cash: a signed ``amount``, a ``reason`` and the
        ``operator`` who made it. A negative one never takes more than the unspent cash."""
        account_id = await self._account(request)
        body = await json_object(request)
        try:
            amount = parse_usd(body.get("amount"), field="amount")
        except ValueError as exc:
            raise errors.InvalidRequest(str(exc), param="amount") from None
        if amount == 0 or abs(amount) > MAX_UNITS:
            raise errors.InvalidRequest(
                "'amount' must be a non-zero USD amount, e.g. \"-2.50\" or \"5.00\".",
                param="amount")  # fmt: skip
        reason = _note(body, "reason")
        if not reason.strip():
            raise errors.InvalidRequest("An adjustment needs a 'reason'.", param="reason")
        txn, replayed = await self._wallet.move_money(
            account_id, kind="adjustment", amount=amount, order_id=string_field(body, "order_id"),
            note=reason, operator=string_field(body, "operator", max_len=100),
        )  # fmt: skip
        return json_response(txn.to_json(), status=200 if replayed else 201)

    async def create_voucher(self, request: web.Request) -> web.Response:
        """A voucher code worth ``amount`` of credits to each of ``max_redemptions`` accounts,
        redeemable until ``valid_until``; its credit ends at ``credit_expires_at``."""
        await self._check(request)
        body = await json_object(request)
        amount = amount_field(body)
        most = body.get("max_redemptions", 1)
        if type(most) is not int or not 1 <= most <= 10**9:
            raise errors.InvalidRequest("'max_redemptions' must be a positive integer.",
                                        param="max_redemptions")  # fmt: skip
        code = body.get("code") or ""
        if code and (not isinstance(code, str) or not VOUCHER_CODE.fullmatch(code)):
            raise errors.InvalidRequest("'code' must be 3 to 64 of A-Z, 0-9 and '-', starting "
                                        "with a letter or digit.", param="code")  # fmt: skip
        made = await self._vouchers.create(Voucher(
            code, amount, most, expiry_field(body, "valid_until") * 1000,
            expiry_field(body, "credit_expires_at") * 1000))  # fmt: skip
        return json_response(made.to_json(), status=201)

    async def wallet(self, request: web.Request) -> web.Response:
        account_id = await self._account(request)
        per_usd = (await self._directory.get_account(account_id)).credits_per_usd
        view = (await self._wallet.view(account_id)).to_json()
        return json_response(with_display(view, per_usd))  # display: the account's credits

    async def transactions(self, request: web.Request) -> web.Response:
        account_id = await self._account(request)
        query = request.query
        limit = query_limit(query.get("limit", "100"), 10_000)
        before = query.get("before", "")
        if before and not is_ledger_cursor(before):
            raise errors.InvalidRequest("'before' must be a cursor from this API.",
                                        param="before")  # fmt: skip
        types = frozenset(t for t in query.get("type", "").split(",") if t)
        if types - TXN_TYPES:
            raise errors.InvalidRequest(
                f"'type' must be among {', '.join(sorted(TXN_TYPES))} (comma-separated).",
                param="type")  # fmt: skip
        txns, next_page = await self._wallet.transactions(
            account_id, limit=limit, before=before, types=types,
            from_ms=time_param(query, "from"), to_ms=time_param(query, "to"))  # fmt: skip
        rows = [t.to_json() for t in txns]
        if query.get("format") == "csv":
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=TXN_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
            return web.Response(text=out.getvalue(), content_type="text/csv")
        return json_response({"data": rows, "next": next_page})


def _note(body: dict[str, Any], name: str) -> str:
    note = body.get(name, "")
    if not isinstance(note, str) or len(note) > 500:
        raise errors.InvalidRequest(
            f"'{name}' must be a string of at most 500 characters.", param=name
        )
    return note


def _credit_terms(body: dict[str, Any], order_id: str) -> dict[str, Any]:
    """A grant's terms: when it ends, and its place in the drain order."""
    if ";" in order_id:  # the ledger lists grants drawn as "id:amount;..."
        raise errors.InvalidRequest("A credit's 'order_id' may not contain ';'.",
                                    param="order_id")  # fmt: skip
    priority = body.get("priority", 0)
    if type(priority) is not int or not 0 <= priority <= 9999:
        raise errors.InvalidRequest(
            "'priority' must be an integer from 0 to 9999 (higher is spent first).",
            param="priority",
        )
    return {"ends_ms": expiry_field(body, "expires_at") * 1000, "priority": priority}
