"""The dispatcher: this process's consumer of the ledger feed, sending accounts' events out.

Each round it reads new pointers from the group (``feed_group``) and, now and then, keeps its
pending ones fresh and takes over those a dead process left idle. A pointer to anything but an
event is acknowledged at once. Pointers to events are held per account; one task per account
delivers up to the latest one it holds (``account_delivery``: in order, under the account's
lock), acknowledges those it got through, and sleeps while the account's head waits on a retry.
Accounts do not wait on each other; ``webhook_concurrency`` bounds deliveries in flight.

Handlers (``handlers=[...]``, each ``async def (account_id, event)``) run for every event
before its webhook; one that raises makes the event fail and be tried again like a failed
delivery (handlers that succeeded are not run again for it). A handler must be idempotent: a
crash may run it twice for the same event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from gateway.events.account_delivery import AccountDelivery, EventHandler, Progress
from gateway.events.delivery_log import DeliveryLog
from gateway.events.dispatch_config import DispatchConfig
from gateway.events.event import entry_key
from gateway.events.feed_group import FeedGroup, Pointer, consumer_name, start_cursor
from gateway.events.listing import EventListing
from gateway.events.sender import WebhookSender
from gateway.store.keys import AccountKeys
from gateway.store.redis_errors import raise_if_cancelling
from gateway.store.replies import as_text

log = logging.getLogger(__name__)

POLL = 0.2  # seconds between reads of the feed while it is quiet (jittered: processes that
# poll in step would leave every new batch of pointers to the same one)
BATCH = 200  # pointers read at a time
MOST_HELD = 50_000  # pointers this process holds at most before it stops reading new ones
RECHECK = 30.0  # an account waiting on a retry looks at its state again at least this often
ERROR_WAIT = 1.0  # seconds before an account whose delivery met an error is tried again
FORGET_EVERY = 600.0  # seconds between sweeps of gone consumers


class Dispatcher:
    def __init__(
        self, redis: Any, config: DispatchConfig, *, handlers: Sequence[EventHandler] = (),
        retention_s: int = 90 * 86400, consumer: str | None = None,
    ) -> None:  # fmt: skip
        self._redis = redis
        self._config = config
        self._handlers = tuple(handlers)
        self._log = DeliveryLog(redis, retention_s=retention_s)
        self.listing = EventListing(redis, self._log)  # what the events API shows
        self._group = FeedGroup(redis, consumer or consumer_name())
        self._held: dict[str, dict[str, str]] = {}  # account -> {feed id: ledger entry id}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._delivery: AccountDelivery | None = None
        self._jitter = random.Random()  # its own: the module's state is not this one's to move

    def _held_count(self) -> int:
        return sum(len(p) for p in self._held.values())

    async def run_forever(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._config.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            self._delivery = AccountDelivery(
                self._redis, self._log, WebhookSender(session, timeout=self._config.timeout),
                policy=self._config.policy, handlers=self._handlers,
                slots=asyncio.Semaphore(self._config.concurrency),
                lock_ms=self._config.lock_ms, timeout=self._config.timeout,
            )  # fmt: skip
            try:
                await self._start()
                await self._rounds()
            finally:
                await self._stop_workers()

    async def _start(self) -> None:
        while True:
            try:
                epoch = await self._group.ensure()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: webhooks wait, nothing is lost
                raise_if_cancelling(exc)
                log.warning("event dispatcher could not join the feed: %s", exc)
                await asyncio.sleep(ERROR_WAIT)
                continue
            assert self._delivery is not None
            self._delivery.start = start_cursor(epoch)
            return

    async def _rounds(self) -> None:
        maintain_every = max(self._config.claim_after / 3, 0.05)
        maintained = forgot = time.monotonic()
        while True:
            got = 0
            try:
                if self._held_count() < MOST_HELD:
                    found = await self._group.read_new(BATCH)
                    got = len(found)
                    await self._take(found)
                if time.monotonic() - maintained >= maintain_every:
                    maintained = time.monotonic()
                    await self._maintain()
                if time.monotonic() - forgot >= FORGET_EVERY:
                    forgot = time.monotonic()
                    await self._group.forget_idle_consumers()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away, the group lost: the next round tries again
                raise_if_cancelling(exc)
                log.warning("event dispatcher round failed: %s", exc)
                if "NOGROUP" in str(exc):
                    await self._start()
                await asyncio.sleep(ERROR_WAIT)
            raise_if_cancelling()
            if got < BATCH:
                await asyncio.sleep(POLL * (0.5 + self._jitter.random()))

    async def _maintain(self) -> None:
        """Keep this consumer's pointers from being claimed, then claim what dead ones left."""
        mine = [fid for pending in self._held.values() for fid in pending]
        still = await self._group.touch(mine)
        for pending in self._held.values():  # acknowledged elsewhere: nothing left to do
            for fid in [f for f in pending if f not in still]:
                pending.pop(fid, None)
        if self._held_count() < MOST_HELD:
            idle_ms = int(self._config.claim_after * 1000)
            await self._take(await self._group.claim_idle(idle_ms, BATCH))

    async def _take(self, found: Sequence[Pointer]) -> None:
        """Acknowledge what is not an event; hold events for their accounts' workers."""
        done: list[str] = []
        readable: list[Pointer] = []
        for p in found:  # one without its fields was trimmed from the feed: nothing to read
            if p.account and entry_key(p.entry_id) > (0, 0):
                readable.append(p)
            else:
                done.append(p.feed_id)
        entries: list[Any] = []
        if readable:  # one round trip (a node each on a cluster), not one connection each
            async with self._redis.pipeline(transaction=False) as pipe:
                for p in readable:
                    pipe.xrange(AccountKeys(p.account).ledger, p.entry_id, p.entry_id)
                entries = await pipe.execute()
        for pointer, rows in zip(readable, entries, strict=True):
            kind = as_text(rows[0][1].get("t", "")) if rows else ""
            if kind != "event":  # a charge, a money move, or trimmed: nothing to send
                done.append(pointer.feed_id)
                continue
            self._held.setdefault(pointer.account, {})[pointer.feed_id] = pointer.entry_id
            if pointer.account not in self._workers:
                self._workers[pointer.account] = asyncio.create_task(
                    self._work(pointer.account), name=f"events of {pointer.account}")
        await self._group.ack(done)

    async def _work(self, account: str) -> None:
        """Deliver the account's held events, acknowledging each once it is finished."""
        assert self._delivery is not None
        held = self._held[account]
        try:
            while held:
                target = max(held.values(), key=entry_key)
                try:
                    progress = await self._delivery.deliver_through(account, target)
                    await self._ack_through(held, progress)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Redis away: the pointers stay pending meanwhile
                    raise_if_cancelling(exc)
                    log.warning("events of account %s: %s", account, exc)
                    progress = Progress(None, time.time() + ERROR_WAIT)
                if held:
                    wait = min(max(progress.wait_until - time.time(), 0.0), RECHECK)
                    await asyncio.sleep(wait)
        finally:  # no await since the loop's last check: nothing new came for the account
            if not held:
                self._held.pop(account, None)
            self._workers.pop(account, None)

    async def _ack_through(self, held: dict[str, str], progress: Progress) -> None:
        if progress.through is None:
            return
        through = entry_key(progress.through)
        done = [fid for fid, entry in held.items() if entry_key(entry) <= through]
        await self._group.ack(done)
        for fid in done:
            held.pop(fid, None)

    async def _stop_workers(self) -> None:
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        self._held.clear()

