"""Receipts over HTTP: an operator reads any account's, a customer's key its own account's.

    GET /admin/accounts/{id}/receipts[?limit=N&before=<next>]     newest first
    GET /admin/accounts/{id}/receipts/{receipt_number}[?format=json|html|pdf]
    GET /v1/wallet/receipts[?limit=N&before=<next>]                the caller's account
    GET /v1/wallet/receipts/{receipt_number}[?format=json|html|pdf]

A receipt is JSON by default, a printable page with ``format=html``, a PDF (to download, with a
file name) with ``format=pdf``. The PDF is drawn in a worker thread: it takes milliseconds of
CPU that the event loop owes to metered traffic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway import errors
from gateway.billing.accounts import Directory
from gateway.billing.receipt_render import receipt_html, receipt_pdf
from gateway.billing.receipts import MAX_NUMBER, Issuer, Receipt, Receipts
from gateway.edge.admin_fields import query_limit
from gateway.edge.auth import Authenticator
from gateway.edge.httpjson import json_response

FORMATS = ("json", "html", "pdf")
# Receipts carry names and addresses: no shared cache keeps them; the page runs no script and
# loads nothing from elsewhere.
PRIVATE = {"Cache-Control": "private, no-store"}
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def receipt_number(text: str, name: str = "receipt_number") -> int:
    """A receipt number from a path or query: an integer from 1, else 400."""
    number = int(text) if text.isascii() and text.isdigit() and len(text) <= 16 else 0
    if not 1 <= number <= MAX_NUMBER:
        raise errors.InvalidRequest(f"'{name}' must be a receipt number (an integer from 1).",
                                    param=name)  # fmt: skip
    return number


class ReceiptsApi:
    def __init__(
        self, *, check: Callable[[web.Request], Awaitable[object]], directory: Directory,
        auth: Authenticator, receipts: Receipts, issuer: Issuer | None = None,
    ) -> None:  # fmt: skip
        """``check`` lets an operator through (the admin API's token check), else raises."""
        self._check, self._directory, self._auth = check, directory, auth
        self._receipts, self._issuer = receipts, issuer

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/admin/accounts/{id}/receipts", self.admin_list),
            web.get("/admin/accounts/{id}/receipts/{receipt_number}", self.admin_receipt),
            web.get("/v1/wallet/receipts", self.my_list),
            web.get("/v1/wallet/receipts/{receipt_number}", self.my_receipt),
        ]

    async def _operated(self, request: web.Request) -> str:
        await self._check(request)
        account_id = request.match_info["id"]
        await self._directory.get_account(account_id)  # 404 for an unknown account
        return account_id

    async def _caller(self, request: web.Request) -> str:
        return (await self._auth.authenticate(request)).account.id

    async def admin_list(self, request: web.Request) -> web.Response:
        return await self._list(request, await self._operated(request))

    async def admin_receipt(self, request: web.Request) -> web.Response:
        return await self._one(request, await self._operated(request))

    async def my_list(self, request: web.Request) -> web.Response:
        return await self._list(request, await self._caller(request))

    async def my_receipt(self, request: web.Request) -> web.Response:
        return await self._one(request, await self._caller(request))

    async def _list(self, request: web.Request, account_id: str) -> web.Response:
        """A page of receipts, newest first; ``next`` is the ``before`` of the next page."""
        query = request.query
        limit = query_limit(query.get("limit", "100"), 1000)
        before = receipt_number(query["before"], "before") if "before" in query else 0
        found, after = await self._receipts.page(account_id, limit=limit, before=before)
        return json_response({"data": [r.to_json(self._issuer) for r in found],
                              "next": str(after) if after is not None else None},
                             headers=PRIVATE)  # fmt: skip

    async def _one(self, request: web.Request, account_id: str) -> web.Response:
        number = receipt_number(request.match_info["receipt_number"])
        form = request.query.get("format", "json")
        if form not in FORMATS:
            raise errors.InvalidRequest("'format' must be json, html or pdf.", param="format")
        receipt = await self._receipts.get(account_id, number)
        if receipt is None:
            raise errors.NotFound(f"No receipt {number} for this account.")
        if form == "html":
            headers = {**PRIVATE, "Content-Security-Policy": PAGE_POLICY}
            page = receipt_html(receipt, self._issuer)
            return web.Response(text=page, content_type="text/html", headers=headers)
        if form == "pdf":
            return await self._pdf(receipt)
        return json_response(receipt.to_json(self._issuer), headers=PRIVATE)

    async def _pdf(self, receipt: Receipt) -> web.Response:
        body = await asyncio.to_thread(receipt_pdf, receipt, self._issuer)
        disposition = f'attachment; filename="receipt-{receipt.number}.pdf"'
        return web.Response(body=body, content_type="application/pdf",
                            headers={**PRIVATE, "Content-Disposition": disposition})  # fmt: skip
