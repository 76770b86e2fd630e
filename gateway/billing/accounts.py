"""Accounts and their API keys, stored in Redis.

An API key is random, shown once, and stored only as its SHA-256: the lookup key is the hash,
so a leaked Redis dump holds no usable secret. A key has a role (docs/guards.md, Roles), may be
limited to client addresses (``allowed_ips``, compiled to networks when the key is read) and may
have its own monthly spend cap; a key stored before roles existed has none of those fields and
is a member that any address may use, without a cap.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

import orjson

from gateway import errors
from gateway.billing.billing_details import BillingDetails
from gateway.billing.timestamps import utc
from gateway.events.webhook_urls import SECRET_FIELD, URL_FIELD, new_webhook_secret
from gateway.store.keys import AccountKeys, accounts_index, api_key_by_hash, api_key_by_id
from pricing import format_usd

KEY_PREFIX = "tg-"
HOLD_POLICIES = ("strict", "postpaid")
# An account's life: active <-> suspended (keys refused, everything kept), then closed for good
# (keys refused, the ledger and wallet kept for the record).
STATUSES = ("active", "suspended", "closed")
# What a key may do: owner (models, and its account's keys and guards through /v1/account),
# member (models), viewer (reads its wallet and usage, calls no model).
ROLES = ("owner", "member", "viewer")
# What PATCH may change of a key (not its id, account, project or secret), as ApiKey fields.
KEY_SETTINGS = ("name", "role", "rpm", "tpm", "models", "allowed_ips", "monthly_spend_limit",
                "expires_at")  # fmt: skip


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    account_id: str
    project: str
    name: str
    rpm: int
    tpm: int
    created_at: str
    models: tuple[str, ...] | None = None  # allow-list of model globs; None: any model
    expires_at: int = 0  # unix seconds; 0: never
    role: str = "member"
    allowed_ips: tuple[IPv4Network | IPv6Network, ...] = ()  # client networks; (): any
    monthly_spend_limit: int = 0  # nanodollars a calendar month (UTC); 0: none

    def expired(self, now: float) -> bool:
        return 0 < self.expires_at <= now

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "account": self.account_id,
            "project": self.project,
            "name": self.name,
            "rpm": self.rpm or None,
            "tpm": self.tpm or None,
            "models": list(self.models) if self.models is not None else None,
            "created_at": self.created_at,
            "expires_at": utc(self.expires_at) if self.expires_at else None,
            "role": self.role,
            "allowed_ips": [str(network) for network in self.allowed_ips],
            "monthly_spend_limit": format_usd(self.monthly_spend_limit)
            if self.monthly_spend_limit else None,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    plan: str
    hold_policy: str
    rpm: int
    tpm: int
    created_at: str
    status: str = "active"
    billing: BillingDetails = field(default_factory=BillingDetails)  # who receipts name
    credits_per_usd: int | None = None  # its display unit: None, USD only
    webhook_url: str | None = None  # where its events go (gateway.events)
    webhook_secret: str | None = None  # signs them; made when a URL is first set
    stripe_customer_id: str | None = None  # its saved card, for auto top-ups (gateway.payments)
    stripe_payment_method: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "plan": self.plan,
            "status": self.status,
            "hold_policy": self.hold_policy,
            "rpm": self.rpm or None,
            "tpm": self.tpm or None,
            "created_at": self.created_at,
            "billing": self.billing.to_json(),
            "credits_per_usd": self.credits_per_usd,
            "webhook_url": self.webhook_url,
            "webhook_secret": self.webhook_secret,
            "stripe_customer_id": self.stripe_customer_id,
            "stripe_payment_method": self.stripe_payment_method,
        }


def _now_iso() -> str:
    return utc(time.time())


def _decode(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }


def _account(account_id: str, f: Mapping[str, str]) -> Account:
    return Account(
        id=account_id,
        name=f.get("name", ""),
        plan=f.get("plan", ""),
        hold_policy=f.get("hold_policy", "strict"),
        rpm=int(f.get("rpm", "0")),
        tpm=int(f.get("tpm", "0")),
        created_at=f.get("created_at", ""),
        status=f.get("status", "active"),
        billing=BillingDetails.from_fields(f),
        credits_per_usd=int(f.get("credits_per_usd") or 0) or None,
        webhook_url=f.get(URL_FIELD) or None,
        webhook_secret=f.get(SECRET_FIELD) or None,
        stripe_customer_id=f.get("stripe_customer_id") or None,
        stripe_payment_method=f.get("stripe_payment_method") or None,
    )


def _models(stored: str | None) -> tuple[str, ...] | None:
    if stored is None:
        return None
    try:
        value = orjson.loads(stored)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, list):
        return ()  # unreadable: allow nothing rather than everything
    return tuple(m for m in value if isinstance(m, str))


def _key_fields(settings: Mapping[str, Any]) -> dict[str, str | None]:
    """``KEY_SETTINGS`` values as the key hash's fields; None: the field is deleted (its
    default: any model, any address, no cap, no expiry)."""
    fields: dict[str, str | None] = {}
    for name, value in settings.items():
        if name == "models":
            fields[name] = None if value is None else orjson.dumps(list(value)).decode()
        elif name == "allowed_ips":
            fields[name] = ",".join(str(network) for network in value) or None
        elif name in ("expires_at", "monthly_spend_limit"):
            fields[name] = str(value) if value else None
        else:
            fields[name] = str(value)
    return fields


def _api_key(f: Mapping[str, str]) -> ApiKey:
    role = f.get("role", "member")
    return ApiKey(
        id=f["id"],
        account_id=f["account"],
        project=f.get("project", "default"),
        name=f.get("name", ""),
        rpm=int(f.get("rpm", "0")),
        tpm=int(f.get("tpm", "0")),
        created_at=f.get("created_at", ""),
        models=_models(f.get("models")),
        expires_at=int(f.get("expires_at", "0") or 0),
        role=role if role in ROLES else "viewer",  # unreadable: the least it could be
        # Written only by this module from parsed networks: a bad one fails the lookup (closed)
        allowed_ips=tuple(ip_network(n) for n in f.get("allowed_ips", "").split(",") if n),
        monthly_spend_limit=int(f.get("monthly_spend_limit", "0") or 0),
    )


class Directory:
    """Reads and writes accounts and API keys."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def create_account(self, fields: Mapping[str, str | None]) -> Account:
        """A new account of ``fields`` (those that are None are left unset)."""
        account_id = str(uuid.uuid4())
        record = {
            "hold_policy": "strict",
            "rpm": "0",
            "tpm": "0",
            **{name: value for name, value in fields.items() if value is not None},
            "created_at": _now_iso(),
        }
        if record.get(URL_FIELD):  # its events are signed with a secret made now
            record[SECRET_FIELD] = new_webhook_secret()
        await self._redis.hset(AccountKeys(account_id).profile, mapping=record)
        await self._redis.sadd(accounts_index(), account_id)
        return _account(account_id, record)

    async def get_account(self, account_id: str) -> Account:
        raw = await self._redis.hgetall(AccountKeys(account_id).profile)
        if not raw:
            raise errors.NotFound(f"no account {account_id!r}")
        return _account(account_id, _decode(raw))

    async def update_account(
        self, account_id: str, fields: Mapping[str, str | None]
    ) -> Account:
        """Set ``fields`` of the account's profile; those that are None are cleared."""
        await self.get_account(account_id)
        profile = AccountKeys(account_id).profile
        cleared = [name for name, value in fields.items() if value is None]
        if cleared:
            await self._redis.hdel(profile, *cleared)
        kept = {name: value for name, value in fields.items() if value is not None}
        if kept:
            await self._redis.hset(profile, mapping=kept)
        return await self._with_webhook_secret(await self.get_account(account_id))

    async def _with_webhook_secret(self, account: Account) -> Account:
        """The account, with a webhook secret made now if it has a URL and no secret yet
        (HSETNX: two concurrent first URLs still end with one secret, the one shown)."""
        if not account.webhook_url or account.webhook_secret:
            return account
        await self._redis.hsetnx(AccountKeys(account.id).profile, SECRET_FIELD,
                                 new_webhook_secret())  # fmt: skip
        return await self.get_account(account.id)

    async def find_accounts(
        self, *, search: str = "", after: str = "", limit: int = 100
    ) -> tuple[list[Account], str | None]:
        """A page of accounts in id order after ``after``, whose name or id contains ``search``
        (case-insensitive); and the cursor of the next page (None: this was the last)."""
        needle = search.casefold()
        page: list[Account] = []
        for account_id in await self.account_ids():
            if account_id <= after:
                continue
            account = await self.get_account(account_id)
            if needle and needle not in account.name.casefold() and needle not in account_id:
                continue
            if len(page) == limit:
                return page, page[-1].id
            page.append(account)
        return page, None

    async def account_ids(self) -> list[str]:
        return sorted(
            m.decode() if isinstance(m, bytes) else m
            for m in await self._redis.smembers(accounts_index())
        )

    async def create_key(
        self,
        account_id: str,
        *,
        project: str,
        name: str,
        rpm: int,
        tpm: int,
        models: tuple[str, ...] | None = None,
        expires_at: int = 0,
        role: str = "member",
        allowed_ips: tuple[IPv4Network | IPv6Network, ...] = (),
        monthly_spend_limit: int = 0,
    ) -> tuple[ApiKey, str]:
        """Returns the key and its secret; the secret is not stored."""
        await self.get_account(account_id)
        secret = new_secret()
        digest = hash_key(secret)
        key = ApiKey(
            id="key_" + uuid.uuid4().hex[:24],
            account_id=account_id,
            project=project,
            name=name,
            rpm=rpm,
            tpm=tpm,
            created_at=_now_iso(),
            models=models,
            expires_at=expires_at,
            role=role,
            allowed_ips=allowed_ips,
            monthly_spend_limit=monthly_spend_limit,
        )
        settings = {setting: getattr(key, setting) for setting in KEY_SETTINGS}
        record = {
            "id": key.id,
            "account": account_id,
            "project": project,
            "created_at": key.created_at,
            **{k: v for k, v in _key_fields(settings).items() if v is not None},
        }
        await self._redis.hset(api_key_by_hash(digest), mapping=record)
        await self._redis.set(api_key_by_id(key.id), digest)
        await self._redis.sadd(AccountKeys(account_id).api_keys, key.id)
        return key, secret

    async def list_keys(self, account_id: str) -> list[ApiKey]:
        await self.get_account(account_id)
        keys = []
        for raw_id in await self._redis.smembers(AccountKeys(account_id).api_keys):
            key_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            digest = await self._redis.get(api_key_by_id(key_id))
            if digest is None:
                continue
            found = await self.key_by_hash(digest.decode() if isinstance(digest, bytes) else digest)
            if found is not None:
                keys.append(found)
        return sorted(keys, key=lambda k: k.created_at)

    async def key_by_hash(self, digest: str) -> ApiKey | None:
        f = _decode(await self._redis.hgetall(api_key_by_hash(digest)))
        # Without its account: nothing, or what an update wrote over a key revoked meanwhile.
        return _api_key(f) if "account" in f and "id" in f else None

    async def _digest(self, key_id: str) -> str:
        digest = await self._redis.get(api_key_by_id(key_id))
        if digest is None:
            raise errors.NotFound(f"no API key {key_id!r}")
        return digest.decode() if isinstance(digest, bytes) else str(digest)

    async def get_key(self, key_id: str) -> ApiKey:
        """The key of that id (404 when there is none)."""
        found = await self.key_by_hash(await self._digest(key_id))
        if found is None:
            raise errors.NotFound(f"no API key {key_id!r}")
        return found

    async def update_key(self, key_id: str, changes: Mapping[str, Any]) -> ApiKey:
        """Set ``changes`` (``KEY_SETTINGS`` names to ApiKey values) of the key; its secret,
        account and project stay."""
        digest = await self._digest(key_id)
        if await self.key_by_hash(digest) is None:
            raise errors.NotFound(f"no API key {key_id!r}")
        fields = _key_fields(changes)
        kept = {name: value for name, value in fields.items() if value is not None}
        cleared = [name for name, value in fields.items() if value is None]
        async with self._redis.pipeline(transaction=True) as pipe:
            if kept:
                pipe.hset(api_key_by_hash(digest), mapping=kept)
            if cleared:
                pipe.hdel(api_key_by_hash(digest), *cleared)
            await pipe.execute()
        return await self.get_key(key_id)

    async def revoke_key(self, key_id: str) -> None:
        digest = await self._digest(key_id)
        found = await self.key_by_hash(digest)
        await self._redis.delete(api_key_by_hash(digest))
        await self._redis.delete(api_key_by_id(key_id))
        if found is not None:
            await self._redis.srem(AccountKeys(found.account_id).api_keys, key_id)
