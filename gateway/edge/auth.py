"""Who is calling: the API key from the headers (pure) and its account (Redis, briefly cached).

The cache keeps a key's record for a couple of seconds so the hot path costs no round trip;
a revoked key stops working in this process at once and in others within ``ttl`` seconds.
Requests that miss the cache together share one lookup: when a busy key's entry expires, its
next requests would otherwise all read the same records from Redis at once.

A key with ``allowed_ips`` is refused (403 ``ip_not_allowed``) on every route that
authenticates, unless the client's address (:mod:`.client_ip`) is in one of its networks,
which were compiled when the key was read and are cached with it. A key without them costs
nothing more.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway import errors
from gateway.billing.accounts import Account, ApiKey, Directory, hash_key
from gateway.edge.client_ip import Network, client_address, is_within

if TYPE_CHECKING:  # the billing core imports Caller from here, and loads no HTTP server
    from aiohttp import web


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The API key from ``Authorization: Bearer <key>`` or ``x-api-key: <key>``."""
    auth = headers.get("Authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def _unexpired(caller: Caller) -> Caller:
    if caller.key.expired(time.time()):
        raise errors.InvalidApiKey(
            f"This API key expired at {caller.key.to_json()['expires_at']}; ask for a new one."
        )
    return caller


@dataclass(frozen=True, slots=True)
class Caller:
    key: ApiKey
    account: Account


class Authenticator:
    def __init__(
        self, directory: Directory, *, ttl: float = 2.0, max_entries: int = 100_000,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:  # fmt: skip
        self._directory = directory
        self._trusted = tuple(trusted_proxies)  # whose X-Forwarded-For names the client
        self._ttl = ttl
        self._max = max_entries
        self._cache: dict[str, tuple[float, Caller]] = {}
        # Lookups under way, by secret; None as a result: no such key.
        self._lookups: dict[str, asyncio.Future[Caller | None]] = {}
        self._forgets = 0  # bumped by forget(): a lookup that spans one is not cached

    async def authenticate(self, request: web.BaseRequest) -> Caller:
        """The caller of ``request``: its key (401 when missing, unknown or expired) and account;
        403 ``ip_not_allowed`` when the key may not be used from the client's address."""
        caller = await self._caller(request.headers)
        if caller.key.allowed_ips:
            self._check_address(caller.key, request)
        return caller

    def _check_address(self, key: ApiKey, request: web.BaseRequest) -> None:
        forwarded = request.headers.getall("X-Forwarded-For", ()) if self._trusted else ()
        address = client_address(request.remote, forwarded, self._trusted)
        if address is None or not is_within(address, key.allowed_ips):
            raise errors.IpNotAllowed(
                f"This API key may not be used from {address or 'an unknown address'}: its "
                "allowed_ips do not include it."
            )

    async def _caller(self, headers: Mapping[str, str]) -> Caller:
        secret = key_from_headers(headers)
        if secret is None:
            raise errors.InvalidApiKey(
                "Missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'."
            )
        hit = self._cache.get(secret)  # keyed by the secret: no hash on the hot path
        if hit is not None and hit[0] > time.monotonic():
            return _unexpired(hit[1])
        lookup = self._lookups.get(secret)
        if lookup is None:
            # A task of its own: a caller that goes away does not cancel the others' lookup.
            lookup = asyncio.ensure_future(self._look_up(secret))
            self._lookups[secret] = lookup
            lookup.add_done_callback(functools.partial(self._looked_up, secret))
        caller = await asyncio.shield(lookup)
        if caller is None:
            raise errors.InvalidApiKey("Incorrect API key provided.")
        return _unexpired(caller)

    async def _look_up(self, secret: str) -> Caller | None:
        forgets = self._forgets
        key = await self._directory.key_by_hash(hash_key(secret))
        if key is None:
            self._cache.pop(secret, None)
            return None
        account = await self._directory.get_account(key.account_id)
        caller = Caller(key=key, account=account)
        if forgets == self._forgets:  # nothing was revoked or changed while it was read
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[secret] = (time.monotonic() + self._ttl, caller)
        return caller

    def _looked_up(self, secret: str, lookup: asyncio.Future[Caller | None]) -> None:
        if self._lookups.get(secret) is lookup:
            del self._lookups[secret]
        if not lookup.cancelled():
            lookup.exception()  # retrieved here too: every caller may have gone

    def forget(self, key_id: str | None = None, account_id: str | None = None) -> None:
        """Drop cached entries for a revoked key or a changed account; lookups under way are
        neither cached nor joined by later requests."""
        self._forgets += 1
        self._lookups.clear()
        for secret, (_, caller) in list(self._cache.items()):
            if caller.key.id == key_id or caller.account.id == account_id:
                del self._cache[secret]
