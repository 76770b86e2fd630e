"""An account's events, newest first, each with how its delivery went
(``GET /admin/accounts/{id}/events``).

Events are read from the account's ledger, where they sit among its charges and money moves;
a page looks through at most ``SCAN_MOST`` entries, so a page may hold fewer events than asked
for (even none) and still have a ``next``: the listing is over when ``next`` is null.
"""

from __future__ import annotations

from typing import Any

from gateway.events.delivery_log import DeliveryLog
from gateway.events.delivery_state import shown
from gateway.events.event import Event, entry_key, parse_entry
from gateway.events.feed_group import start_cursor
from gateway.store.keys import AccountKeys, dispatch_epoch
from gateway.store.replies import as_text

SCAN_BATCH = 500
SCAN_MOST = 20_000


class EventListing:
    def __init__(self, redis: Any, delivery_log: DeliveryLog) -> None:
        self._redis = redis
        self._log = delivery_log

    async def page(
        self, account_id: str, *, limit: int, before: str = ""
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` events before the ledger entry ``before`` (none: the newest), and
        the ``before`` of the next page (None: no more)."""
        if before and entry_key(before) == (0, 0):
            return [], None
        events, after = await self._events(account_id, limit, before)
        state = await self._log.state(account_id)
        stored = await self._log.records(account_id, [e.entry_id for e in events])
        epoch = await self._redis.get(dispatch_epoch())
        start = start_cursor(int(as_text(epoch))) if epoch else "0-0"
        rows = []
        for event, record in zip(events, stored, strict=True):
            delivery = shown(event.entry_id, record, state, start)
            rows.append({"id": event.id, "event": event.name, "created_at": event.created_at,
                         "data": dict(event.data), "state": delivery.state,
                         "attempts": delivery.attempts,
                         "last_error": delivery.last_error})  # fmt: skip
        return rows, after

    async def _events(
        self, account_id: str, limit: int, before: str
    ) -> tuple[list[Event], str | None]:
        ledger = AccountKeys(account_id).ledger
        high = "(" + before if before else "+"
        found: list[Event] = []
        scanned = 0
        while scanned < SCAN_MOST:
            rows = await self._redis.xrevrange(ledger, high, "-", count=SCAN_BATCH)
            for raw_id, fields in rows:
                entry_id = as_text(raw_id)
                scanned += 1
                event = parse_entry(account_id, entry_id, {as_text(k): as_text(v)
                                                           for k, v in fields.items()})  # fmt: skip
                if event is not None:
                    found.append(event)
                    if len(found) == limit:
                        return found, entry_id
            if len(rows) < SCAN_BATCH:
                return found, None  # the ledger's start
            high = "(" + as_text(rows[-1][0])
        return found, high[1:]
