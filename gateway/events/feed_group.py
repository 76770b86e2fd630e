"""The dispatcher's consumer group (``dispatch``) on the ledger feed.

Every gateway process is one consumer of the group, named after its host, pid and a random
part; each feed pointer goes to one of them, and stays pending (in that consumer's list) until
it is acknowledged. A consumer that dies leaves its pointers pending; the others take them
over with XAUTOCLAIM once they have been idle ``dispatch_claim_after``. A live consumer keeps
its own pending pointers fresh (XCLAIM to itself), however long an account's retries take.

The group is made at the feed's end (``$``), not at its start: a deployment that adds
webhooks, or whose group was lost, does not replay the feed's whole retention of pointers. The
first start records when (``dispatch_epoch``); an account's events start just before it
(``start_cursor``), so an event written in the minute before reaches its webhook too.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from gateway.store.keys import dispatch_epoch, ledger_feed
from gateway.store.replies import as_text

GROUP = "dispatch"
START_MARGIN_MS = 60_000
TOUCH_BATCH = 1000
IDLE_CONSUMER_MS = 3600_000  # a consumer with nothing pending, unseen this long, is forgotten


@dataclass(frozen=True, slots=True)
class Pointer:
    """A feed entry: the account's ledger entry ``entry_id`` is at ``feed_id`` in the feed."""

    feed_id: str
    account: str
    entry_id: str


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def start_cursor(epoch_ms: int) -> str:
    """Where the events of an account that has no delivery cursor yet start (exclusive)."""
    return f"{max(epoch_ms - START_MARGIN_MS, 0)}-0"


def pointers(rows: Iterable[Any]) -> list[Pointer]:
    """Feed rows ``(id, {"a": account, "e": entry id})`` as pointers; a row without its fields
    (trimmed from the feed) comes out with an empty account, to be acknowledged."""
    found = []
    for feed_id, fields in rows:
        if feed_id is None:
            continue
        f = {as_text(k): as_text(v) for k, v in (fields or {}).items()}
        found.append(Pointer(as_text(feed_id), f.get("a", ""), f.get("e", "")))
    return found


class FeedGroup:
    def __init__(self, redis: Any, consumer: str) -> None:
        self._redis = redis
        self.consumer = consumer

    async def ensure(self) -> int:
        """Make the group unless it exists; returns the epoch (unix ms)."""
        epoch = await self.epoch()
        try:
            await self._redis.xgroup_create(ledger_feed(), GROUP, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        return epoch

    async def epoch(self) -> int:
        await self._redis.set(dispatch_epoch(), str(int(time.time() * 1000)), nx=True)
        return int(as_text(await self._redis.get(dispatch_epoch()) or "0"))

    async def read_new(self, count: int) -> list[Pointer]:
        """Up to ``count`` pointers no consumer has had yet (now pending for this one)."""
        reply = await self._redis.xreadgroup(GROUP, self.consumer, {ledger_feed(): ">"},
                                             count=count)  # fmt: skip
        streams = reply.values() if isinstance(reply, dict) else [r[1] for r in reply or []]
        return [p for rows in streams for p in pointers(rows)]

    async def claim_idle(self, idle_ms: int, count: int) -> list[Pointer]:
        """Pointers pending for ``idle_ms`` or more with any consumer (a dead one's), now
        this one's; at most ``count``."""
        claimed: list[Pointer] = []
        start = "0-0"
        while len(claimed) < count:
            reply = await self._redis.xautoclaim(ledger_feed(), GROUP, self.consumer, idle_ms,
                                                 start_id=start, count=count)  # fmt: skip
            claimed += pointers(reply[1])
            start = as_text(reply[0])
            if start == "0-0":
                break
        return claimed

    async def touch(self, feed_ids: Sequence[str]) -> set[str]:
        """Reset the idle time of this consumer's pending ``feed_ids`` (so no other consumer
        claims them while this one waits on a retry); returns those still pending."""
        kept: set[str] = set()
        for at in range(0, len(feed_ids), TOUCH_BATCH):
            ids = list(feed_ids[at : at + TOUCH_BATCH])
            found = await self._redis.xclaim(ledger_feed(), GROUP, self.consumer, 0, ids,
                                             justid=True)  # fmt: skip
            kept.update(as_text(i) for i in found)
        return kept

    async def ack(self, feed_ids: Sequence[str]) -> None:
        if feed_ids:
            await self._redis.xack(ledger_feed(), GROUP, *feed_ids)

    async def forget_idle_consumers(self) -> int:
        """Drop consumers (gone processes) with nothing pending, unseen for an hour."""
        gone = 0
        for info in await self._redis.xinfo_consumers(ledger_feed(), GROUP):
            name = as_text(info.get("name", ""))
            if (name != self.consumer and int(info.get("pending", 0)) == 0
                    and int(info.get("idle", 0)) > IDLE_CONSUMER_MS):  # fmt: skip
                await self._redis.xgroup_delconsumer(ledger_feed(), GROUP, name)
                gone += 1
        return gone
