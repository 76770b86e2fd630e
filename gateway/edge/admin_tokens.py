"""Which admin tokens are valid, and rotating them without downtime.

A token is valid when its SHA-256 is one of the configured ones (``TOLLGATE_ADMIN_TOKEN``, which
may list several, comma-separated, while clients move from one to the next), the one ``tollgate
serve`` generated, or one made by ``POST /admin/tokens/rotate`` and not yet past its end. A
rotation makes a new token at once, and gives the token that asked for it a grace period (the
clients still using it keep working until it ends); every gateway process sees both at once,
since they live in Redis. Only digests are stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from typing import Any

from gateway.store.keys import admin_token_hash, admin_tokens
from gateway.store.replies import as_text

TOKEN_PREFIX = "tga-"
CACHE_SECONDS = 1.0  # how long one process keeps the stored digests between reads


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AdminTokens:
    def __init__(self, configured: Sequence[str], redis: Any) -> None:
        self._configured = tuple(d for d in configured if d)
        self._redis = redis
        self._stored: dict[str, int] = {}  # digest -> end (ms; 0: none)
        self._read_at = -CACHE_SECONDS

    async def valid(self, token: str) -> bool:
        mine = digest(token)
        if any(hmac.compare_digest(mine, d) for d in self._configured):
            return True
        stored = await self._stored_digests()
        end = next((e for d, e in stored.items() if hmac.compare_digest(mine, d)), None)
        return end is not None and (end == 0 or end > time.time() * 1000)

    async def rotate(self, current: str, grace_seconds: int) -> tuple[str, int | None]:
        """A new token, valid now; the current one ends ``grace_seconds`` from now, unless it
        is a configured one (then it lasts until the configuration drops it: None)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(24)
        await self._redis.hset(admin_tokens(), digest(token), "0")
        ends: int | None = None
        mine = digest(current)
        if mine not in self._configured:
            ends = int(time.time() * 1000) + grace_seconds * 1000
            await self._redis.hset(admin_tokens(), mine, str(ends))
            generated = await self._redis.get(admin_token_hash())
            if generated is not None and as_text(generated) == mine:
                await self._redis.delete(admin_token_hash())  # it lives on in the hash
        self._read_at = -CACHE_SECONDS  # this process sees the change at once
        return token, ends

    async def _stored_digests(self) -> dict[str, int]:
        now = time.monotonic()
        if now - self._read_at >= CACHE_SECONDS:
            raw = await self._redis.hgetall(admin_tokens())
            stored = {as_text(k): int(as_text(v) or 0) for k, v in raw.items()}
            generated = await self._redis.get(admin_token_hash())
            if generated is not None:
                stored.setdefault(as_text(generated), 0)
            self._stored, self._read_at = stored, now
        return self._stored
