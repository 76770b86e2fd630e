"""Settling: charge a finished request once, release its hold, and keep the books honest
when Redis or the process misbehaves.

* every settle is journaled on local disk (:mod:`gateway.billing.journal`) before the answer
  ends, and leaves the journal once Redis has applied it;
* the settle runs as its own task, shielded from the handler's cancellation, and is awaited
  on shutdown (bounded);
* a settle that meets an unavailable Redis (``StoreUnavailable``: connection lost, LOADING,
  READONLY, ...) waits in the journal and is replayed in order until Redis takes it, across
  restarts (it is idempotent on the request id); one that Redis refuses for good
  (``StoreRefused``) is logged and counted, never retried;
* holds of requests still running are renewed, so only a dead process's holds expire.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.apis import Endpoint, ParsedRequest
from gateway.apis.usage_checks import Anomaly, anomaly
from gateway.billing.journal import Journal
from gateway.billing.ledger import outcome_field, usage_field
from gateway.billing.wallet import MAX_UNITS, Admission, Limits, Settlement, Wallet
from gateway.edge.auth import Caller
from gateway.observability.metrics import Metrics
from gateway.settings import Settings
from gateway.store.redis_errors import StoreRefused, StoreUnavailable, raise_if_cancelling
from gateway.upstream.provider import Provider
from pricing import ModelPrice, Usage, compute_cost, format_usd

log = logging.getLogger("gateway.edge.proxy")
ADOPT_INTERVAL = 5.0  # seconds between looks for journals of dead gateway processes


@dataclass(frozen=True, slots=True)
class Settling:
    """A settle in flight. ``certain``: it will charge exactly ``cost`` (see
    ``Settler._certain``), so the answer may go out before Redis confirms."""

    cost: int
    task: asyncio.Future[tuple[int, int | None]]
    certain: bool


@dataclass(slots=True)
class Call:
    """One metered request as it moves through the proxy."""

    request_id: str
    caller: Caller
    endpoint: Endpoint
    req: ParsedRequest
    price: ModelPrice
    provider: Provider
    limits: Limits
    price_version: str
    admission: Admission | None = None
    started: float = field(default_factory=time.perf_counter)
    upstream_seconds: float = 0.0
    settled: bool = False
    answered_early: bool = False  # the answer need not wait for the settle's reply
    output_bound: int = 0  # the most output the admission held for (0: none)
    anomalies: list[Anomaly] = field(default_factory=list)  # recorded with its charge

    @property
    def model(self) -> str:
        return self.req.model


class Settler:
    def __init__(
        self,
        *,
        settings: Settings,
        wallet: Wallet,
        metrics: Metrics,
        journal: Journal | None = None,
    ) -> None:
        self._settings = settings
        self._wallet = wallet
        self._metrics = metrics
        self.journal = journal or Journal(None)  # None: kept in memory only (tests, tools)
        self._settling: set[asyncio.Future[Any]] = set()
        self._request_log = logging.getLogger("tollgate.request")
        self._leases: dict[str, str] = {}  # request id -> account id, while a hold is placed
        self._trying: set[str] = set()  # request ids whose first attempt is under way
        self._live: set[str] = set()  # streams running here with their progress journaled

    def lease(self, call: Call) -> None:
        """Keep renewing the admitted call's hold until it is settled."""
        self._leases[call.request_id] = call.caller.account.id

    async def renew_leases(self) -> int:
        """Push the hold deadlines of this process's requests in flight: a hold expires only
        when its process is gone, however long its request runs."""
        by_account: dict[str, list[str]] = {}
        for request_id, account_id in list(self._leases.items()):
            by_account.setdefault(account_id, []).append(request_id)
        ttl_ms = self._settings.hold_ttl_ms
        renewed = await asyncio.gather(
            *(self._wallet.renew(a, ids, ttl_ms) for a, ids in by_account.items())
        )
        return sum(renewed)

    async def drain(self, seconds: float = 30.0) -> None:
        """Wait for settles still running (called on shutdown), at most ``seconds``."""
        pending = set(self._settling)
        if pending:
            _, left = await asyncio.wait(pending, timeout=seconds)
            for task in left:
                task.cancel()
            if left:
                log.error("shutdown with %d settle(s) unfinished; their holds expire and the "
                          "requests are unbilled: see the log above", len(left))  # fmt: skip

    def start(
        self, call: Call, usage: Usage | None, *, status: str, source: str, http_status: int
    ) -> Settling:
        """Start charging and releasing: the settle runs as its own task (it survives the
        handler's cancellation), and the caller decides whether to wait for Redis's reply."""
        call.settled = True
        self._live.discard(call.request_id)
        cost, usage, args = self._args(call, usage, status, source, http_status, final=True)
        try:
            self.journal.record(call.request_id, args)  # before the answer ends
        except OSError as exc:  # a full or broken disk: settle anyway, without the safety net
            self._metrics.journal_failures.inc()
            log.error("settle journal: cannot write %s: %s", call.request_id, exc)
        self._trying.add(call.request_id)
        attempt = functools.partial(self._apply, args)
        task = self._track(asyncio.ensure_future(
            self._run(call, usage, cost, attempt, http_status, source)
        ))  # fmt: skip
        self._wallet.settling(call.caller.account.id, task)
        certain = self._certain(call, cost)
        if certain:  # the answer goes out now: count it now, as what it will be charged
            call.answered_early = True
            self._observe(call, usage, cost, http_status, source)
        return Settling(cost, task, certain)

    def progress(self, call: Call, usage: Usage) -> None:
        """Journal what a stream has cost so far, not as its settle: should this process die
        before the stream ends, the process that adopts its journal charges what was relayed
        (``usage_source`` "partial") instead of nothing."""
        if call.settled:
            return
        _, _, args = self._args(call, usage, "settled", "partial", 200)
        self._live.add(call.request_id)  # not replayed while its stream runs here
        try:
            self.journal.record(call.request_id, args, final=False)
        except OSError as exc:
            self._metrics.journal_failures.inc()
            log.error("settle journal: cannot write the progress of %s: %s", call.request_id,
                      exc)  # fmt: skip

    def _args(
        self, call: Call, usage: Usage | None, status: str, source: str, http_status: int,
        *, final: bool = False,
    ) -> tuple[int, Usage, dict[str, Any]]:
        """(cost, usage, the settle's journaled arguments); ``final``: the settle itself,
        whose anomalies are counted and logged (a stream's progress lines are not)."""
        cost = compute_cost(usage, call.price) if usage is not None else 0
        if cost > MAX_UNITS and final:  # usage checks make this all but unreachable
            call.anomalies.append(anomaly("cost_capped", {"cost": str(cost),
                                                          "cut": str(cost - MAX_UNITS)}))
            self._metrics.shortfall.inc((cost - MAX_UNITS) / 1e9)
        cost = min(cost, MAX_UNITS)
        if call.anomalies and final:
            self._record_anomalies(call)
        usage = usage or Usage()
        args = {
            "account_id": call.caller.account.id,
            "request_id": call.request_id,
            "key_id": call.caller.key.id,
            "cost": cost,
            "tokens": usage.total_tokens,
            "limits": call.limits.as_args(),
            "record_ttl": self._settings.record_ttl,
            "ledger_retention": self._settings.ledger_retention,
            "usage": usage_field(usage),
            "outcome": outcome_field(status, source, http_status, int(time.time() * 1000),
                                     [a.to_json() for a in call.anomalies]),
            "policy": call.caller.account.hold_policy,
        }
        return cost, usage, args

    async def settle(
        self, call: Call, usage: Usage | None, *, status: str, source: str, http_status: int
    ) -> tuple[int, int | None]:
        """Charge and release, and wait for Redis: returns (cost, balance after, or None if
        Redis failed and the charge is being retried in the background)."""
        settling = self.start(call, usage, status=status, source=source, http_status=http_status)
        return await asyncio.shield(settling.task)

    def _certain(self, call: Call, cost: int) -> bool:
        """True when the settle cannot charge anything but ``cost``: the request's hold covers
        it (settle_v5 always lets a request pay up to its own hold, even in a strict wallet
        that another request overdrew) or the wallet is postpaid, and the hold is young enough
        to exist whether or not its renewals went through."""
        admission = call.admission
        if admission is None:
            return False
        if time.perf_counter() - call.started > self._settings.hold_ttl / 2:
            return False
        return cost <= admission.hold or call.caller.account.hold_policy == "postpaid"

    async def _run(
        self,
        call: Call,
        usage: Usage,
        cost: int,
        attempt: Callable[[], Awaitable[Settlement | None]],
        http_status: int,
        source: str,
    ) -> tuple[int, int | None]:
        t0 = time.perf_counter()
        try:
            settlement = await attempt()
        except StoreRefused as exc:  # refused for good: retrying cannot help
            self._refused(call.request_id, exc)
            return cost, None
        except StoreUnavailable as exc:
            # The client has (or is about to have) its answer: never let it go free. The
            # settle waits in the journal, and the replayer applies it once Redis is back.
            log.error("settle of %s could not reach Redis (%s); kept in the journal",
                      call.request_id, exc)  # fmt: skip
            if not call.answered_early:
                self._observe(call, usage, cost, http_status, source)
            return cost, None
        finally:
            self._trying.discard(call.request_id)
            if call.admission is not None:
                self._metrics.holds.dec(call.admission.hold / 1e9)
        self.journal.done(call.request_id)
        self._leases.pop(call.request_id, None)  # applied: its hold needs no more renewal
        self._metrics.child(self._metrics.redis, "settle").observe(time.perf_counter() - t0)
        if settlement is None:
            if call.admission is not None or cost:  # else: an admission cancelled before it ran
                log.error("settle of %s found no admitted request; nothing charged%s",
                          call.request_id, " (its answer showed a cost)"
                          if call.answered_early and cost else "")  # fmt: skip
            return 0, None
        if settlement.shortfall and not settlement.replayed:
            self._metrics.shortfall.inc(settlement.shortfall / 1e9)
            log.warning("strict wallet %s could not pay all of %s: charged %s, short %s",
                        call.caller.account.id, call.request_id, format_usd(settlement.cost),
                        format_usd(settlement.shortfall))  # fmt: skip
        if call.answered_early and settlement.cost != cost:
            # Cannot happen while the hold covers the cost; say so loudly if it ever does.
            log.error("settle of %s charged %s after its answer showed %s", call.request_id,
                      format_usd(settlement.cost), format_usd(cost))  # fmt: skip
        if not call.answered_early:
            self._observe(call, usage, settlement.cost, http_status, source)
        return settlement.cost, settlement.balance

    def _record_anomalies(self, call: Call) -> None:
        for odd in call.anomalies:
            self._metrics.anomalies.labels(odd.kind).inc()
        log.warning("%s: %s from %s: %s", call.request_id, call.model, call.provider.name,
                    "; ".join(f"{a.kind} {a.detail}" for a in call.anomalies))  # fmt: skip

    def _track(self, task: asyncio.Future[Any]) -> asyncio.Future[Any]:
        self._settling.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Future[Any]) -> None:
        self._settling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a settle failed", exc_info=task.exception())

    async def _apply(self, args: dict[str, Any]) -> Settlement | None:
        """Run one journaled settle against Redis (``args`` as ``start`` journals them)."""
        return await self._wallet.settle(
            args["account_id"],
            request_id=args["request_id"],
            key_id=args["key_id"],
            cost=args["cost"],
            tokens=args["tokens"],
            limits=Limits(*args["limits"]),
            record_ttl=args["record_ttl"],
            ledger_retention=args["ledger_retention"],
            usage=args["usage"],
            outcome=args["outcome"],
            policy=args["policy"],
        )

    def _refused(self, request_id: str, exc: Exception) -> None:
        self.journal.done(request_id)
        self._leases.pop(request_id, None)
        self._metrics.settles_refused.inc()
        log.error("settle of %s refused by Redis, request unbilled: %s", request_id, exc)

    async def replay_once(self) -> bool:
        """Apply the journal's pending settles, oldest first; an account whose settle Redis
        cannot take now waits (its later ones too, to keep its order), others go on. Returns
        True when nothing is left waiting."""
        waiting: set[str] = set()
        for rid in list(self.journal.pending):
            entry = self.journal.pending.get(rid)  # now: a newer line may have replaced it
            if entry is None or rid in self._trying or rid in self._live:
                continue
            account = entry.args.get("account_id", "")
            if account in waiting:
                continue
            try:
                await self._apply(entry.args)
            except StoreRefused as exc:
                self._refused(rid, exc)
                continue
            except Exception as exc:  # StoreUnavailable, or anything unforeseen: try later
                raise_if_cancelling(exc)
                log.warning("settle of %s waits for Redis: %s", rid, exc)
                waiting.add(account)
                continue
            self.journal.done(rid, entry)  # unless a newer line came meanwhile
            self._leases.pop(rid, None)
            log.warning("settle of %s applied from the journal", rid)
        return not waiting

    async def replay_forever(self, fsync_interval: float = 1.0) -> None:
        """Replay what the journal holds (backing off while Redis is away), keep its metrics,
        and sync it every ``fsync_interval`` seconds."""
        delay, synced, adopted = 0.05, time.monotonic(), time.monotonic()
        while True:
            await asyncio.sleep(delay)
            try:
                if time.monotonic() - synced >= fsync_interval:
                    synced = time.monotonic()
                    await self.journal.flush_off_loop()
                if time.monotonic() - adopted >= ADOPT_INTERVAL:  # a sibling worker that died
                    adopted = time.monotonic()
                    self.journal.adopt_orphans()
                self._metrics.journal_pending.set(len(self.journal.pending))
                self._metrics.journal_oldest.set(self.journal.oldest_age())
                if len(self.journal.pending) <= len(self._trying) + len(self._live):
                    delay = 0.05
                    continue
                delay = 0.05 if await self.replay_once() else min(max(delay * 2, 0.1), 5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the disk, most likely: keep going, and say so
                raise_if_cancelling(exc)
                log.exception("settle journal upkeep failed; trying again")
                delay = min(max(delay * 2, 0.1), 5.0)
            raise_if_cancelling()

    def _observe(self, call: Call, usage: Usage, cost: int, http_status: int, source: str) -> None:
        m = self._metrics
        total = time.perf_counter() - call.started
        overhead = max(total - call.upstream_seconds, 0.0)
        m.request_done(
            call.model,
            call.provider.name,
            str(http_status or "error"),
            usage,
            cost / 1e9,
            total,
            overhead,
        )  # metrics only; the ledger stays exact
        if self._request_log.isEnabledFor(logging.INFO):
            self._request_log.info("request", extra={"fields": {
                "request_id": call.request_id,
                "account": call.caller.account.id,
                "key": call.caller.key.id,
                "project": call.caller.key.project,
                "model": call.model,
                "provider": call.provider.name,
                "endpoint": call.endpoint.path,
                "stream": call.req.stream,
                "status": http_status or None,
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_read_tokens": usage.cache_read_tokens,
                "cache_write_tokens": usage.cache_write_tokens + usage.cache_write_1h_tokens,
                "cost": format_usd(cost),
                "usage_source": source,
                "latency_ms": round(total * 1000, 3),
                "overhead_ms": round(overhead * 1000, 3),
            }})  # fmt: skip
