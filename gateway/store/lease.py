"""A lease in Redis: one process at a time does a job (relaying the ledger, reaping holds).

``hold()`` takes the lease when it is free, or renews it when this process has it; it
expires by itself ``ttl_ms`` after the last renewal, so a dead holder is replaced. A holder
that paused past its expiry may briefly believe it still holds the lease: work that must never
be done twice checks ``token`` inside the same Lua call that does it (as relay_append_v1 does).
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

from gateway.store.replies import as_text


class Lease:
    def __init__(self, redis: Any, key: str, ttl_ms: int) -> None:
        self._redis = redis
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = secrets.token_hex(12)

    async def hold(self) -> bool:
        """True when this process holds the lease now (taken or renewed)."""
        if await self._redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return True
        current = await self._redis.get(self.key)
        if as_text(current or "") == self.token:
            await self._redis.pexpire(self.key, self.ttl_ms)
            return True
        return False

    async def release(self) -> None:
        with contextlib.suppress(Exception):
            if as_text(await self._redis.get(self.key) or "") == self.token:
                await self._redis.delete(self.key)
