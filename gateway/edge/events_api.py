"""An account's events over HTTP, for the operator (``gateway.events.listing``)::

    GET /admin/accounts/{id}/events[?limit=N&before=<next>]     newest first, with delivery state
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway import errors
from gateway.billing.accounts import Directory
from gateway.edge.admin_fields import is_ledger_cursor, query_limit
from gateway.edge.httpjson import json_response
from gateway.events.listing import EventListing

DEFAULT_LIMIT = "50"
MOST = 500


class EventsApi:
    def __init__(
        self, *, check: Callable[[web.Request], Awaitable[object]], directory: Directory,
        listing: EventListing,
    ) -> None:  # fmt: skip
        """``check`` lets an operator through (the admin API's token check), else raises."""
        self._check, self._directory, self._listing = check, directory, listing

    def routes(self) -> list[web.AbstractRouteDef]:
        return [web.get("/admin/accounts/{id}/events", self.admin_list)]

    async def admin_list(self, request: web.Request) -> web.Response:
        await self._check(request)
        account = await self._directory.get_account(request.match_info["id"])
        limit = query_limit(request.query.get("limit", DEFAULT_LIMIT), MOST)
        before = request.query.get("before", "")
        if before and not is_ledger_cursor(before):
            raise errors.InvalidRequest("'before' must be the 'next' of an earlier page.",
                                        param="before")  # fmt: skip
        data, after = await self._listing.page(account.id, limit=limit, before=before)
        return json_response({"data": data, "next": after})
