"""Who is calling: the API key from the headers (pure) and its account (Redis, briefly cached).

The cache keeps a key's record for a couple of seconds so the hot path costs no round trip;
a revoked key stops working in this process at once and in others within ``ttl`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from gateway import errors
from gateway.accounts import Account, ApiKey, Directory, hash_key


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The API key from ``Authorization: Bearer <key>`` or ``x-api-key: <key>``."""
    auth = headers.get("Authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


@dataclass(frozen=True, slots=True)
class Caller:
    key: ApiKey
    account: Account


class Authenticator:
    def __init__(
        self, directory: Directory, *, ttl: float = 2.0, max_entries: int = 100_000
    ) -> None:
        self._directory = directory
        self._ttl = ttl
        self._max = max_entries
        self._cache: dict[str, tuple[float, Caller]] = {}

    async def authenticate(self, headers: Mapping[str, str]) -> Caller:
        secret = key_from_headers(headers)
        if secret is None:
            raise errors.InvalidApiKey(
                "Missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'."
            )
        now = time.monotonic()
        hit = self._cache.get(secret)  # keyed by the secret: no hash on the hot path
        if hit is not None and hit[0] > now:
            return hit[1]
        key = await self._directory.key_by_hash(hash_key(secret))
        if key is None:
            self._cache.pop(secret, None)
            raise errors.InvalidApiKey("Incorrect API key provided.")
        account = await self._directory.get_account(key.account_id)
        caller = Caller(key=key, account=account)
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[secret] = (now + self._ttl, caller)
        return caller

    def forget(self, key_id: str | None = None, account_id: str | None = None) -> None:
        """Drop cached entries for a revoked key or a changed account."""
        for secret, (_, caller) in list(self._cache.items()):
            if caller.key.id == key_id or caller.account.id == account_id:
                del self._cache[secret]
