"""The admin API: accounts, API keys, admin tokens and the ledger export (money routes:
:mod:`.admin_money`)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from gateway import errors
from gateway.billing.accounts import HOLD_POLICIES, STATUSES, Directory
from gateway.billing.feed import read_feed
from gateway.billing.guards import FIELDS as GUARD_FIELDS
from gateway.billing.guards import Guards, GuardStore, patched
from gateway.billing.ledger import export_json
from gateway.billing.plans import BUILT_IN as BUILT_IN_PLANS
from gateway.billing.plans import Plan
from gateway.billing.timestamps import utc_ms
from gateway.billing.vouchers import Vouchers
from gateway.billing.wallet import Wallet
from gateway.edge.admin_fields import (
    is_ledger_cursor,
    profile_fields,
    query_limit,
)
from gateway.edge.admin_money import MoneyRoutes
from gateway.edge.admin_tokens import AdminTokens
from gateway.edge.auth import Authenticator
from gateway.edge.httpjson import (
    json_object,
    json_response,
    limit_field,
    string_field,
)
from gateway.edge.key_fields import key_settings
from gateway.events.webhook_urls import URL_FIELD
from gateway.payments.account_fields import SAVED_PAYMENT

DEFAULT_ALERT = 5 * 10**9  # a new account's balance alert, USD 5.00 (docs/guards.md)
ACCOUNT_FIELDS = {"name", "plan", "hold_policy", "rpm", "tpm", "status", "billing",
                  "credits_per_usd", URL_FIELD} | set(GUARD_FIELDS) | set(SAVED_PAYMENT)


class Admin:
    def __init__(
        self,
        *,
        directory: Directory,
        wallet: Wallet,
        auth: Authenticator,
        token_sha256: str,
        redis: Any = None,
        plans: Mapping[str, Plan] | None = None,
        vouchers: Vouchers | None = None,
    ) -> None:
        self._redis = redis
        self._vouchers = vouchers or Vouchers(redis, wallet)
        self._plans = dict(plans or BUILT_IN_PLANS)
        self._directory = directory
        self._wallet = wallet
        self._auth = auth
        # Configured digests, comma-separated (several while clients move to a new token).
        self.tokens = AdminTokens(token_sha256.split(","), redis)
        self.guards = GuardStore(redis)
        self.money = MoneyRoutes(self.check, directory, wallet, self._plans, self._vouchers)

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.post("/admin/accounts", self.create_account),
            web.get("/admin/accounts", self.list_accounts),
            web.get("/admin/accounts/{id}", self.get_account),
            web.patch("/admin/accounts/{id}", self.patch_account),
            web.post("/admin/accounts/{id}/keys", self.create_key),
            web.get("/admin/accounts/{id}/keys", self.list_keys),
            web.patch("/admin/keys/{key_id}", self.patch_key),
            web.delete("/admin/keys/{key_id}", self.delete_key),
            *self.money.routes(),
            web.get("/admin/ledger", self.ledger),
            web.post("/admin/tokens/rotate", self.rotate_token),
        ]

    async def check(self, request: web.Request) -> str:
        """The caller's admin token, once it is known to be valid (else 401)."""
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or not await self.tokens.valid(token):
            raise errors.AdminUnauthorized(
                "A valid admin token is required: 'Authorization: Bearer $TOLLGATE_ADMIN_TOKEN'."
            )
        return token

    async def rotate_token(self, request: web.Request) -> web.Response:
        """A new admin token; the one that asked keeps working for ``grace_seconds`` (default
        3600, at most 30 days) so that its clients can move without downtime."""
        current = await self.check(request)
        body = await json_object(request)
        grace = body.get("grace_seconds", 3600)
        if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= 30 * 86400:
            raise errors.InvalidRequest(
                "'grace_seconds' must be an integer from 0 to 2592000 (30 days).",
                param="grace_seconds")  # fmt: skip
        token, ends = await self.tokens.rotate(current, grace)
        return json_response({
            "token": token,
            "previous_valid_until": utc_ms(ends) if ends is not None else None,
            "note": "The token used for this call stays valid until it ends"
            if ends is not None else "The token used for this call is configured "
            "(TOLLGATE_ADMIN_TOKEN): it stays valid until the configuration drops it.",
        }, status=201)  # fmt: skip

    # -- accounts ----------------------------------------------------------------------------

    def _account_fields(self, body: dict[str, Any], *, creating: bool) -> dict[str, str | None]:
        unknown = set(body) - ACCOUNT_FIELDS
        if unknown:
            raise errors.InvalidRequest(
                f"Unknown field {sorted(unknown)[0]!r}; expected one of "
                f"{', '.join(sorted(ACCOUNT_FIELDS))}.",
                param=sorted(unknown)[0],
            )
        fields: dict[str, str | None] = profile_fields(body)  # billing details, display unit
        if creating or "name" in body:
            fields["name"] = string_field(body, "name")
        if creating or "plan" in body:
            fields["plan"] = string_field(body, "plan", default="default")
            if fields["plan"] not in self._plans:
                raise errors.InvalidRequest(
                    f"No plan {fields['plan']!r}; the plans are "
                    f"{', '.join(sorted(self._plans))}.", param="plan")  # fmt: skip
        if "hold_policy" in body:
            policy = body["hold_policy"]
            if policy not in HOLD_POLICIES:
                raise errors.InvalidRequest(
                    "'hold_policy' must be 'strict' or 'postpaid'.", param="hold_policy"
                )
            fields["hold_policy"] = policy
        for name in ("rpm", "tpm"):
            if name in body:
                fields[name] = str(limit_field(body, name))
        if "status" in body:
            if body["status"] not in STATUSES:
                raise errors.InvalidRequest(
                    f"'status' must be one of {', '.join(STATUSES)}.", param="status"
                )
            fields["status"] = body["status"]
        return fields

    async def create_account(self, request: web.Request) -> web.Response:
        await self.check(request)
        body = await json_object(request)
        fields = self._account_fields(body, creating=True)
        plan = self._plans[fields["plan"] or "default"]
        guards = patched(Guards((DEFAULT_ALERT,), None, plan.monthly_limit, plan.limit_action),
                         body)  # fmt: skip
        account = await self._directory.create_account(fields)
        await self.guards.set(account.id, guards)
        await self._grant_free_quota(account.id, plan)
        return json_response({**account.to_json(), **guards.to_json()}, status=201)

    async def _grant_free_quota(self, account_id: str, plan: Plan) -> None:
        """The plan's free quota, granted once when the account is made."""
        for category, amount in (("ai", plan.free_quota_ai), ("cloud", plan.free_quota_cloud)):
            if amount:
                await self._wallet.move_money(
                    account_id, kind="free_quota", amount=amount, category=category,
                    order_id=f"free-quota:{category}:start", note=f"{plan.name} plan")  # fmt: skip

    async def list_accounts(self, request: web.Request) -> web.Response:
        """A page of accounts (``limit``, default 100), in id order after the cursor ``after``,
        whose name or id contains ``search``; ``next`` is the cursor of the next page."""
        await self.check(request)
        query = request.query
        limit = query_limit(query.get("limit", "100"), 1000)
        page, after = await self._directory.find_accounts(
            search=query.get("search", "")[:200], after=query.get("after", "")[:100], limit=limit
        )
        guards = await asyncio.gather(*(self.guards.get(a.id) for a in page))
        return json_response({"data": [{**a.to_json(), **g.to_json()}
                                       for a, g in zip(page, guards, strict=True)],
                              "next": after})  # fmt: skip

    async def get_account(self, request: web.Request) -> web.Response:
        await self.check(request)
        account = await self._directory.get_account(request.match_info["id"])
        return json_response({**account.to_json(), **(await self.guards.get(account.id)).to_json()})

    async def patch_account(self, request: web.Request) -> web.Response:
        await self.check(request)
        account_id = request.match_info["id"]
        body = await json_object(request)
        fields = self._account_fields(body, creating=False)
        current = await self._directory.get_account(account_id)
        if current.status == "closed" and fields.get("status", "closed") != "closed":
            raise errors.Conflict("This account is closed for good; it cannot be reopened.",
                                  param="status")  # fmt: skip
        guards = patched(await self.guards.get(account_id), body)
        account = await self._directory.update_account(account_id, fields)
        await self.guards.set(account_id, guards)
        self._auth.forget(account_id=account_id)
        return json_response({**account.to_json(), **guards.to_json()})

    # -- keys ----------------------------------------------------------------------------------

    async def create_key(self, request: web.Request) -> web.Response:
        await self.check(request)
        settings = key_settings(await json_object(request), creating=True)
        key, secret = await self._directory.create_key(request.match_info["id"], **settings)
        return json_response({**key.to_json(), "key": secret}, status=201)

    async def list_keys(self, request: web.Request) -> web.Response:
        await self.check(request)
        keys = await self._directory.list_keys(request.match_info["id"])
        return json_response({"data": [k.to_json() for k in keys]})

    async def patch_key(self, request: web.Request) -> web.Response:
        """Change a key's settings (``KEY_SETTINGS``: not its project or secret); at once in
        this process, in the others within the key cache's few seconds."""
        await self.check(request)
        changes = key_settings(await json_object(request), creating=False)
        key = await self._directory.update_key(request.match_info["key_id"], changes)
        self._auth.forget(key_id=key.id)
        return json_response(key.to_json())

    async def delete_key(self, request: web.Request) -> web.Response:
        await self.check(request)
        key_id = request.match_info["key_id"]
        await self._directory.revoke_key(key_id)
        self._auth.forget(key_id=key_id)
        return json_response({"id": key_id, "deleted": True})

    async def ledger(self, request: web.Request) -> web.Response:
        """Every account's ledger entries in the feed's order, as JSON lines, after a cursor."""
        await self.check(request)
        after = request.query.get("after", "")
        if after and not is_ledger_cursor(after):
            raise errors.InvalidRequest("'after' must be a cursor from this API.", param="after")
        try:
            limit = int(request.query.get("limit", "1000"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 10_000:
            raise errors.InvalidRequest("'limit' must be an integer from 1 to 10000.",
                                        param="limit")  # fmt: skip
        rows = await read_feed(self._redis, after, limit)
        body = b"".join(orjson.dumps(export_json(*row)) + b"\n" for row in rows)
        return web.Response(body=body, content_type="application/x-ndjson")
