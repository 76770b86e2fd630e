"""The global ledger feed: every account's ledger entries in one order, each exactly once.

``GET /admin/ledger?after=<cursor>`` pages through it. Accounts' ledgers live on their own
hash tags (any Redis Cluster slot), so no write can put an entry into a global order in the
same atomic step. Instead one relay, elected by a lock among all gateway processes, copies
pointers (account, entry id) into one stream, the feed, whose ids are the cursors:

* a process that writes to a ledger marks the account dirty (a sorted set; marks are batched
  and sent every ``FLUSH_INTERVAL``);
* the leader takes a dirty account, reads its ledger after the account's ``relayed`` mark,
  appends pointers to the feed in entry order (``relay_append_v1``: only while it holds the
  lock, so a leader that paused past its lock appends nothing), then moves the mark
  (``relay_mark_v1``, on the account's slot) and the feed's checkpoint;
* a new leader first replays the feed after the checkpoint onto the accounts' marks (a leader
  may die between appending and marking) and sweeps every account once for entries whose
  mark was lost with a dead process's batch of dirty marks.

Hence each entry reaches the feed once, in its account's order, whichever processes die.
Readers see an entry once the relay has run (every ``INTERVAL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from gateway.billing.lua_scripts import ScriptCaller
from gateway.store.keys import (
    AccountKeys,
    accounts_index,
    ledger_checkpoint,
    ledger_dirty,
    ledger_feed,
    ledger_relay_lock,
)
from gateway.store.lease import Lease
from gateway.store.redis_errors import StoreError, raise_if_cancelling
from gateway.store.replies import as_text

log = logging.getLogger(__name__)

INTERVAL = 0.2  # seconds between the relay's rounds
FLUSH_INTERVAL = 0.05  # seconds between sends of this process's dirty marks
LOCK_MS = 5000  # the leader's lock; renewed every round
BATCH = 500  # entries read from one account per step
SWEEP_INTERVAL = 600.0  # seconds between the leader's sweeps for lost dirty marks


class NotLeader(Exception):
    """The lock went to another process while this one was relaying."""


class LedgerRelay:
    def __init__(self, redis: Any, scripts: ScriptCaller, *, retention_s: int) -> None:
        self._redis = redis
        self._scripts = scripts
        self.retention_ms = retention_s * 1000
        self._lease = Lease(redis, ledger_relay_lock(), LOCK_MS)
        self._token = self._lease.token
        self._dirty: set[str] = set()
        self._leading = False
        self._swept = 0.0

    # -- writers ------------------------------------------------------------------------------

    def touched(self, account_id: str) -> None:
        """The account's ledger has a new entry (called after each settle or money move)."""
        self._dirty.add(account_id)

    async def flush_dirty(self) -> None:
        if not self._dirty:
            return
        accounts, self._dirty = self._dirty, set()
        now = int(time.time() * 1000)
        try:
            await self._redis.zadd(ledger_dirty(), dict.fromkeys(accounts, now), nx=True)
        except Exception:
            self._dirty |= accounts  # sent with the next batch
            raise

    # -- the leader ---------------------------------------------------------------------------

    async def run_once(self) -> int:
        """One round: lead (or not), then relay what is dirty. Returns pointers appended."""
        if not await self._lead():
            self._leading = False
            return 0
        if not self._leading:  # just elected: make the marks whole first
            await self._recover()
            self._leading = True
            self._swept = 0.0
        if time.monotonic() - self._swept >= SWEEP_INTERVAL:
            # At election, then now and again: dirty marks that died with a process.
            await self._sweep_all()
            self._swept = time.monotonic()
        appended = 0
        for account in await self._redis.zrange(ledger_dirty(), 0, 99):
            await self._renew()
            await self._redis.zrem(ledger_dirty(), account)  # a later write marks it again
            appended += await self._relay_account(as_text(account))
        return appended

    async def _renew(self) -> None:
        """Keep the lease through a long round; stop at once if it went to another process."""
        if not await self._lease.hold():
            raise NotLeader("the relay lease went to another process")

    async def _lead(self) -> bool:
        return await self._lease.hold()

    async def _relay_account(self, account: str) -> int:
        k = AccountKeys(account)
        appended = 0
        while True:
            await self._renew()
            found = await self._scripts.call("relay_ids_v1", [k.ledger, k.relayed], [BATCH])
            ids = [as_text(i) for i in found]
            if not ids:
                return appended
            last = await self._scripts.call(
                "relay_append_v1", [ledger_feed(), ledger_relay_lock()],
                [self._token, self.retention_ms, account, *ids],
            )  # fmt: skip
            if not last:
                raise NotLeader(account)
            await self._scripts.call("relay_mark_v1", [k.relayed], [ids[-1]])
            await self._redis.set(ledger_checkpoint(), as_text(last))
            appended += len(ids)

    async def _recover(self) -> None:
        """Bring the marks up to the feed: pointers appended after the checkpoint by a leader
        that died before it marked them."""
        cursor = as_text(await self._redis.get(ledger_checkpoint()) or "0-0")
        while True:
            rows = await self._redis.xrange(ledger_feed(), "(" + cursor, "+", count=BATCH)
            if not rows:
                return
            for _, fields in rows:
                f = {as_text(a): as_text(b) for a, b in fields.items()}
                await self._scripts.call("relay_mark_v1", [AccountKeys(f["a"]).relayed], [f["e"]])
            cursor = as_text(rows[-1][0])
            await self._redis.set(ledger_checkpoint(), cursor)

    async def _sweep_all(self) -> None:
        """Mark dirty every account with entries past its mark (their dirty mark may have died
        with a process's unsent batch). Once per election, not per round."""
        cursor: int | str = 0
        while True:
            await self._renew()
            cursor, ids = await self._redis.sscan(accounts_index(), cursor=cursor, count=200)
            for account in ids:
                k = AccountKeys(as_text(account))
                last = await self._redis.xrevrange(k.ledger, count=1)
                mark = as_text(await self._redis.get(k.relayed) or "0-0")
                if last and _entry_key(as_text(last[0][0])) > _entry_key(mark):
                    await self._redis.zadd(ledger_dirty(), {as_text(account): 0}, nx=True)
            if int(cursor) == 0:
                return

    async def run_forever(self) -> None:
        last_round = 0.0
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await self.flush_dirty()
                if time.monotonic() - last_round >= INTERVAL:
                    last_round = time.monotonic()
                    await self.run_once()
            except asyncio.CancelledError:
                raise
            except (NotLeader, StoreError) as exc:
                raise_if_cancelling(exc)
                self._leading = False
                log.warning("ledger relay: %s", exc)
            except Exception as exc:  # Redis away: the next round tries again
                raise_if_cancelling(exc)
                self._leading = False
                log.warning("ledger relay could not run: %s", exc)
            raise_if_cancelling()

    async def close(self) -> None:
        """Send the last marks; give up the lock if this process holds it."""
        with contextlib.suppress(Exception):
            await self.flush_dirty()
        await self._lease.release()


async def read_feed(
    redis: Any, after: str, limit: int
) -> list[tuple[str, str, str, dict[str, str]]]:
    """Up to ``limit`` entries after the cursor ``after``: (cursor, account, entry id, fields).
    An entry trimmed from its ledger (past retention) is left out."""
    out: list[tuple[str, str, str, dict[str, str]]] = []
    while not out:  # a page whose entries were all trimmed is skipped, not taken for the end
        rows = await redis.xrange(ledger_feed(), "(" + after if after else "-", "+", count=limit)
        if not rows:
            return out
        pointers = [
            (as_text(fid), {as_text(a): as_text(b) for a, b in f.items()}) for fid, f in rows
        ]
        entries = await asyncio.gather(*(
            redis.xrange(AccountKeys(p["a"]).ledger, p["e"], p["e"]) for _, p in pointers
        ))  # fmt: skip
        for (cursor, p), found in zip(pointers, entries, strict=True):
            if found:
                fields = {as_text(a): as_text(b) for a, b in found[0][1].items()}
                out.append((cursor, p["a"], p["e"], fields))
        after = pointers[-1][0]
    return out


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms or 0), int(seq or 0)
