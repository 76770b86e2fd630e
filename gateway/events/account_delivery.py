"""One account's events out, in order, under the account's delivery lock (docs/guards.md).

A dispatcher holding a pointer to event E of account A takes A's lock (any other dispatcher
with a pointer of A waits), reads how far A got (its delivery hash), and tries each unfinished
event of A up to E, oldest first: the in-process handlers, then the webhook. An event that
fails becomes A's head, to be tried again after its backoff; A's later events wait behind it
(other accounts do not), until it is delivered or its time is up (``failed``). An account
without a ``webhook_url`` has its events marked ``no_webhook`` once the handlers ran.

Every write is the lock holder's (``lua/delivery_v1.lua`` checks the token), so a dispatcher
that paused past its lock cannot move the account backwards. A crash between a receiver's 2xx
and the record sends that event again, with the same id: at least once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.events.backoff import Backoff
from gateway.events.delivery_log import DeliveryLog
from gateway.events.delivery_state import DELIVERED, FAILED, NO_WEBHOOK, Record, Tries
from gateway.events.event import Event, entry_key, parse_entry
from gateway.events.sender import MAX_ERROR, WebhookSender
from gateway.events.webhook_urls import SECRET_FIELD, URL_FIELD
from gateway.store.keys import AccountKeys
from gateway.store.lease import Lease
from gateway.store.replies import as_text

log = logging.getLogger(__name__)

EventHandler = Callable[[str, Event], Awaitable[None]]
BATCH = 200  # ledger entries read at a time while catching up
LOCK_RETRY = 0.25  # seconds before asking again for a lock another dispatcher holds


@dataclass(frozen=True, slots=True)
class Progress:
    """Every event of the account up to ``through`` is finished (None: not known now); come
    back at ``wait_until`` (unix seconds) for the rest."""

    through: str | None
    wait_until: float = 0.0


@dataclass(frozen=True, slots=True)
class Hook:
    url: str | None
    secret: str | None


def now_ms() -> int:
    return int(time.time() * 1000)


class AccountDelivery:
    def __init__(
        self, redis: Any, delivery_log: DeliveryLog, sender: WebhookSender, *, policy: Backoff,
        handlers: Sequence[EventHandler], slots: asyncio.Semaphore, lock_ms: int,
        timeout: float,
    ) -> None:  # fmt: skip
        self._redis, self._log, self._sender = redis, delivery_log, sender
        self._policy, self._handlers, self._slots = policy, tuple(handlers), slots
        self._lock_ms, self._timeout = lock_ms, timeout
        self.start = "0-0"  # where an account without a cursor starts (feed_group.start_cursor)

    async def deliver_through(self, account: str, target: str) -> Progress:
        """Deliver the account's events up to the ledger entry ``target``, in order."""
        lease = Lease(self._redis, AccountKeys(account).delivery_lock, self._lock_ms)
        if not await lease.hold():
            return Progress(None, time.time() + LOCK_RETRY)
        try:
            return await self._catch_up(account, target, lease)
        finally:
            await lease.release()

    async def _catch_up(self, account: str, target: str, lease: Lease) -> Progress:
        state = await self._log.state(account)
        done = state.finished_through(self.start)
        if entry_key(target) <= entry_key(done):
            return Progress(target)
        head = state.head if state.head and entry_key(state.head) > entry_key(done) else None
        if head and state.head_tries.next_ms > now_ms():
            return Progress(done, state.head_tries.next_ms / 1000)
        hook = await self._hook(account)
        low = head or "(" + done
        while True:
            rows = await self._redis.xrange(AccountKeys(account).ledger, low, target,
                                            count=BATCH)  # fmt: skip
            for raw_id, fields in rows:
                entry_id = as_text(raw_id)
                event = parse_entry(account, entry_id, {as_text(k): as_text(v)
                                                        for k, v in fields.items()})  # fmt: skip
                if event is None:
                    continue
                if not await lease.hold():
                    return Progress(done, time.time() + LOCK_RETRY)
                wait = await self._deliver(lease.token, event, state.tries(entry_id), hook)
                if wait is not None:
                    return Progress(done, wait)
                done = entry_id
            if len(rows) < BATCH:
                return Progress(target)
            low = "(" + as_text(rows[-1][0])

    async def _hook(self, account: str) -> Hook:
        url, secret = await self._redis.hmget(AccountKeys(account).profile, URL_FIELD,
                                              SECRET_FIELD)  # fmt: skip
        return Hook(as_text(url) if url else None, as_text(secret) if secret else None)

    async def _deliver(self, token: str, event: Event, tries: Tries, hook: Hook) -> float | None:
        """One try of ``event``, recorded; None once it is finished, else when (unix seconds)
        the account may go on."""
        first = tries.first_ms or now_ms()
        attempts, handled, error = tries.attempts, tries.handled, None
        async with self._slots:
            if not handled:
                error = await self._handle(event)
                handled = error is None
            if handled and hook.url:
                attempts += 1
                error = (await self._sender.send(hook.url, hook.secret, event) if hook.secret
                         else "the account has a webhook_url but no webhook_secret")  # fmt: skip
        if error is None:
            record = Record(DELIVERED if hook.url else NO_WEBHOOK, attempts)
            written = await self._log.finish(token, event.account, event.entry_id, record)
            return None if written else time.time() + LOCK_RETRY
        failures = tries.failures + 1
        next_ms = self._policy.next_try_ms(failures, first, now_ms())
        if next_ms is None:
            log.warning("event %s failed for good after %d tries: %s", event.id, failures, error)
            written = await self._log.finish(token, event.account, event.entry_id,
                                             Record(FAILED, attempts, error))  # fmt: skip
            return None if written else time.time() + LOCK_RETRY
        await self._log.retry(token, event.account, event.entry_id, Tries(
            attempts, failures, first, next_ms, handled, error))  # fmt: skip
        return next_ms / 1000

    async def _handle(self, event: Event) -> str | None:
        """Run the in-process handlers; None when all ran, else the first one's failure."""
        for handler in self._handlers:
            try:
                async with asyncio.timeout(self._timeout):
                    await handler(event.account, event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event handler %s failed on %s", _name(handler), event.id,
                            exc_info=exc)  # fmt: skip
                return f"handler {_name(handler)}: {type(exc).__name__}: {exc}"[:MAX_ERROR]
        return None


def _name(handler: EventHandler) -> str:
    return str(getattr(handler, "__qualname__", None) or type(handler).__name__)
