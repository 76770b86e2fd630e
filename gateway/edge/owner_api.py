"""The owner's API: a key of role ``owner`` manages its own account (docs/guards.md, Roles),
through the admin API's account and key routes scoped to that account.

    GET    /v1/account                  the account and its guards, as the admin's GET shows it
    PATCH  /v1/account                  its guards and billing details (``OWNER_FIELDS``)
    POST   /v1/account/keys             a new key of the account (the admin's body and answer)
    GET    /v1/account/keys             the account's keys (never their secrets)
    PATCH  /v1/account/keys/{key_id}    change a key (``KEY_SETTINGS``)
    DELETE /v1/account/keys/{key_id}    revoke a key

A member or viewer gets 403 ``role_not_allowed`` on each; another account's key is 404, as if
there were none. What only the operator changes (``OPERATOR_FIELDS``: plan, status, hold
policy, the account's rate limits, name, display unit) is 403 ``role_not_allowed`` naming the
field, an unknown field 400; money (top-ups, credits, refunds, plan changes) has no route here.
A suspended or closed account's owner may read, and change nothing (403 ``account_suspended``
/ ``account_closed``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import errors
from gateway.billing.accounts import ApiKey, Directory
from gateway.billing.guards import FIELDS as GUARD_FIELDS
from gateway.billing.guards import GuardStore, patched
from gateway.edge.access import check_active, check_owner
from gateway.edge.admin_fields import profile_fields
from gateway.edge.auth import Authenticator, Caller
from gateway.edge.httpjson import json_object, json_response
from gateway.edge.key_fields import key_settings

# What an owner may change of its account. The account's webhook_url (and what comes with it)
# joins here when accounts have one, parsed as the admin's PATCH parses it (see patch_account).
OWNER_FIELDS = (*GUARD_FIELDS, "billing", "webhook_url")
OPERATOR_FIELDS = ("name", "plan", "status", "hold_policy", "rpm", "tpm", "credits_per_usd")


def check_owner_fields(body: dict[str, Any]) -> None:
    """Refuse a field the owner may not change: the operator's (403), or an unknown one (400)."""
    for name in sorted(body):
        if name in OPERATOR_FIELDS:
            raise errors.RoleNotAllowed(
                f"'{name}' is changed by the operator of this gateway only; an owner's key "
                f"changes {', '.join(OWNER_FIELDS)}.", param=name)  # fmt: skip
        if name not in OWNER_FIELDS:
            raise errors.InvalidRequest(
                f"Unknown field {name!r}; an owner's key changes {', '.join(OWNER_FIELDS)}.",
                param=name)  # fmt: skip


class OwnerApi:
    def __init__(self, *, auth: Authenticator, directory: Directory, guards: GuardStore) -> None:
        self._auth, self._directory, self._guards = auth, directory, guards

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/v1/account", self.get_account),
            web.patch("/v1/account", self.patch_account),
            web.post("/v1/account/keys", self.create_key),
            web.get("/v1/account/keys", self.list_keys),
            web.patch("/v1/account/keys/{key_id}", self.patch_key),
            web.delete("/v1/account/keys/{key_id}", self.delete_key),
        ]

    async def _owner(self, request: web.Request, *, changing: bool = False) -> Caller:
        """The caller, once it is known to be an owner (and, to change anything, of an active
        account)."""
        caller = await self._auth.authenticate(request)
        check_owner(caller)
        if changing:
            check_active(caller)
        return caller

    async def _own_key(self, caller: Caller, key_id: str) -> ApiKey:
        """The key ``key_id`` of the caller's account; 404 for one of another account too."""
        try:
            key = await self._directory.get_key(key_id)
        except errors.NotFound:
            key = None
        if key is None or key.account_id != caller.account.id:
            raise errors.NotFound(f"No API key {key_id!r} in this account.", param="key_id")
        return key

    # -- the account ---------------------------------------------------------------------------

    async def get_account(self, request: web.Request) -> web.Response:
        caller = await self._owner(request)
        account = await self._directory.get_account(caller.account.id)  # not the auth cache's
        guards = await self._guards.get(account.id)
        return json_response({**account.to_json(), **guards.to_json()})

    async def patch_account(self, request: web.Request) -> web.Response:
        caller = await self._owner(request, changing=True)
        body = await json_object(request)
        check_owner_fields(body)
        account_id = caller.account.id
        fields = profile_fields(body)  # billing details, webhook_url (credits_per_usd: refused)
        guards = patched(await self._guards.get(account_id), body)
        account = await self._directory.update_account(account_id, fields)
        await self._guards.set(account_id, guards)
        self._auth.forget(account_id=account_id)
        return json_response({**account.to_json(), **guards.to_json()})

    # -- its keys ------------------------------------------------------------------------------

    async def create_key(self, request: web.Request) -> web.Response:
        caller = await self._owner(request, changing=True)
        settings = key_settings(await json_object(request), creating=True)
        key, secret = await self._directory.create_key(caller.account.id, **settings)
        return json_response({**key.to_json(), "key": secret}, status=201)

    async def list_keys(self, request: web.Request) -> web.Response:
        caller = await self._owner(request)
        keys = await self._directory.list_keys(caller.account.id)
        return json_response({"data": [k.to_json() for k in keys]})

    async def patch_key(self, request: web.Request) -> web.Response:
        caller = await self._owner(request, changing=True)
        changes = key_settings(await json_object(request), creating=False)
        key = await self._own_key(caller, request.match_info["key_id"])
        changed = await self._directory.update_key(key.id, changes)
        self._auth.forget(key_id=key.id)
        return json_response(changed.to_json())

    async def delete_key(self, request: web.Request) -> web.Response:
        caller = await self._owner(request, changing=True)
        key = await self._own_key(caller, request.match_info["key_id"])
        await self._directory.revoke_key(key.id)
        self._auth.forget(key_id=key.id)
        return json_response({"id": key.id, "deleted": True})
