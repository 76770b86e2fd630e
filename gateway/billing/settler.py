"""Settling: charge a finished request once, release its hold, and keep the books honest
when Redis or the process misbehaves.

* the settle runs as its own task, shielded from the handler's cancellation, and is awaited
  on shutdown (bounded);
* a settle that fails on Redis is retried in the background until it lands (it is idempotent
  on the request id); a script refusal is not retried;
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

import orjson
from redis.exceptions import RedisError, ResponseError

from gateway.apis import Endpoint, ParsedRequest
from gateway.billing.wallet import MAX_UNITS, Admission, Limits, Settlement, Wallet
from gateway.edge.auth import Caller
from gateway.observability.metrics import Metrics
from gateway.settings import Settings
from gateway.upstream.provider import Provider
from pricing import ModelPrice, Usage, compute_cost, format_usd

log = logging.getLogger("gateway.edge.proxy")


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

    @property
    def model(self) -> str:
        return self.req.model


class Settler:
    def __init__(self, *, settings: Settings, wallet: Wallet, metrics: Metrics) -> None:
        self._settings = settings
        self._wallet = wallet
        self._metrics = metrics
        self._settling: set[asyncio.Future[Any]] = set()
        self._request_log = logging.getLogger("tollgate.request")
        self._leases: dict[str, str] = {}  # request id -> account id, while a hold is placed

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
        self._leases.pop(call.request_id, None)
        cost = compute_cost(usage, call.price) if usage is not None else 0
        if cost > MAX_UNITS:  # only an absurd usage report gets here
            log.error("cost of %s capped at the wallet maximum (was %d)", call.request_id, cost)
            cost = MAX_UNITS
        usage = usage or Usage()
        # Packed in one field: every field is work for Redis and for the encoder, per request.
        record = {
            "status": status,
            "result": orjson.dumps({
                "usage_source": source,
                "http_status": http_status,
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_read_tokens": usage.cache_read_tokens,
                "cache_write_tokens": usage.cache_write_tokens,
                "cache_write_1h_tokens": usage.cache_write_1h_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
                "images": usage.images,
                "image_variant": usage.image_variant,
                "audio_ms": usage.audio_ms,
                "finished_ms": int(time.time() * 1000),
            }).decode(),
        }  # fmt: skip
        attempt = functools.partial(
            self._wallet.settle,
            call.caller.account.id,
            request_id=call.request_id,
            key_id=call.caller.key.id,
            cost=cost,
            tokens=usage.total_tokens,
            limits=call.limits,
            record_ttl=self._settings.record_ttl,
            record=record,
            policy=call.caller.account.hold_policy,
        )
        task = self._track(asyncio.ensure_future(
            self._run(call, usage, cost, attempt, http_status, source)
        ))  # fmt: skip
        self._wallet.settling(call.caller.account.id, task)
        certain = self._certain(call, cost)
        if certain:  # the answer goes out now: count it now, as what it will be charged
            call.answered_early = True
            self._observe(call, usage, cost, http_status, source)
        return Settling(cost, task, certain)

    async def settle(
        self, call: Call, usage: Usage | None, *, status: str, source: str, http_status: int
    ) -> tuple[int, int | None]:
        """Charge and release, and wait for Redis: returns (cost, balance after, or None if
        Redis failed and the charge is being retried in the background)."""
        settling = self.start(call, usage, status=status, source=source, http_status=http_status)
        return await asyncio.shield(settling.task)

    def _certain(self, call: Call, cost: int) -> bool:
        """True when the settle cannot charge anything but ``cost``: the request's hold covers
        it (settle_v4 always lets a request pay up to its own hold, even in a strict wallet
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
        except ResponseError as exc:  # a script refused: retrying cannot help
            log.error("settle of %s refused by Redis, request unbilled: %s", call.request_id,
                      exc)  # fmt: skip
            return cost, None
        except (RedisError, OSError) as exc:
            # The client has (or is about to have) its answer: never let it go free. The
            # settle is idempotent on the request id, so retry it until Redis is back.
            log.error("settle of %s failed (%s); retrying in the background", call.request_id,
                      exc)  # fmt: skip
            self._track(asyncio.ensure_future(self._settle_later(call.request_id, attempt)))
            if not call.answered_early:
                self._observe(call, usage, cost, http_status, source)
            return cost, None
        finally:
            if call.admission is not None:
                self._metrics.holds.dec(call.admission.hold / 1e9)
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

    def _track(self, task: asyncio.Future[Any]) -> asyncio.Future[Any]:
        self._settling.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Future[Any]) -> None:
        self._settling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a settle failed", exc_info=task.exception())

    async def _settle_later(self, request_id: str, attempt: Callable[[], Awaitable[Any]]) -> None:
        delay = 0.1
        deadline = time.monotonic() + max(self._settings.hold_ttl, 60.0)
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            try:
                await attempt()
            except ResponseError as exc:
                log.error("settle of %s refused by Redis, request unbilled: %s", request_id, exc)
                return
            except (RedisError, OSError) as exc:
                delay = min(delay * 2, 5.0)
                log.warning("settle of %s still failing: %s", request_id, exc)
                continue
            log.warning("settle of %s done after Redis came back", request_id)
            return
        log.error("settle of %s abandoned: Redis unreachable for too long; reconcile by hand",
                  request_id)  # fmt: skip

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
