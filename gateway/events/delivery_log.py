"""The accounts' delivery hashes in Redis: read by anyone, written only by the holder of the
account's delivery lock, through ``lua/delivery_v1.lua`` (see ``delivery_state`` for the
fields)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

from gateway.events.delivery_state import (
    STATE_FIELDS,
    DeliveryState,
    Record,
    Tries,
    parse_state,
    record_field,
)
from gateway.store.keys import AccountKeys
from gateway.store.replies import as_text

SCRIPT = "delivery_v1"


def script_text() -> str:
    return (resources.files("gateway.events") / "lua" / f"{SCRIPT}.lua").read_text("utf-8")


class DeliveryLog:
    def __init__(self, redis: Any, *, retention_s: int) -> None:
        self._redis = redis
        self._script = redis.register_script(script_text())
        self._retention_ms = retention_s * 1000

    async def state(self, account_id: str) -> DeliveryState:
        return parse_state(await self._redis.hmget(AccountKeys(account_id).delivery,
                                                   STATE_FIELDS))  # fmt: skip

    async def records(self, account_id: str, entry_ids: Sequence[str]) -> list[str | None]:
        """The stored record of each event (None where it has none)."""
        if not entry_ids:
            return []
        values = await self._redis.hmget(AccountKeys(account_id).delivery,
                                         [record_field(e) for e in entry_ids])  # fmt: skip
        return [as_text(v) if v is not None else None for v in values]

    async def finish(self, token: str, account_id: str, entry_id: str, record: Record) -> bool:
        """The event is finished (delivered, failed or no_webhook): the cursor moves to it.
        False when ``token`` no longer holds the account's lock (nothing written)."""
        cutoff = int(time.time() * 1000) - self._retention_ms
        return await self._call(token, account_id, "done", entry_id, record.state,
                                record.attempts, record.last_error or "", cutoff)  # fmt: skip

    async def retry(self, token: str, account_id: str, entry_id: str, tries: Tries) -> bool:
        """The event failed and will be tried again: it is the head, with its tries."""
        return await self._call(
            token, account_id, "retry", entry_id, tries.attempts, tries.failures,
            tries.first_ms, tries.next_ms, "1" if tries.handled else "0", tries.error or "",
        )  # fmt: skip

    async def _call(self, token: str, account_id: str, *args: object) -> bool:
        k = AccountKeys(account_id)
        written = await self._script(keys=[k.delivery, k.delivery_lock], args=[token, *args])
        return bool(int(written))
