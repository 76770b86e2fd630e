"""The one place that moves client traffic: auth → admit (hold) → forward → relay → settle.

Money rules kept here:
* nothing is forwarded before the admission script has placed a hold;
* every admitted request is settled exactly once: the settle runs as its own task, shielded
  from the handler's cancellation, and the app waits for such tasks on shutdown;
* the cost shown to the client (``X-Usage-Cost`` or the ``: x-usage-cost`` SSE comment) is the
  cost the settle script charged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict
from redis.exceptions import RedisError, ResponseError

from gateway import errors, ratelimit
from gateway.auth import Authenticator, Caller
from gateway.endpoints import Endpoint, ParsedRequest
from gateway.endpoints.base import StreamTracker
from gateway.metrics import Metrics
from gateway.models import check_allowed
from gateway.pricing_holder import PricingHolder
from gateway.providers.base import Provider, UpstreamRequest, UpstreamResponse
from gateway.routing import Router
from gateway.settings import Settings
from gateway.sse import SSEDecoder, comment
from gateway.tokens import TokenCounter
from gateway.tracking import partial_usage
from gateway.usage import EventKind
from gateway.wallet import MAX_UNITS, Admission, Limits, Refusal, Wallet
from pricing import ModelPrice, Usage, compute_cost, format_usd

log = logging.getLogger(__name__)

# Request headers never forwarded: hop-by-hop, our own auth, and what the HTTP client recomputes.
DROP_REQUEST = frozenset({
    "host", "authorization", "x-api-key", "content-length", "connection", "keep-alive",
    "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization", "proxy-connection",
    "accept-encoding", "cookie", "expect",
})  # fmt: skip
# Response headers never relayed: hop-by-hop, lengths we recompute, and cookies and limits of
# our provider account (they are not the caller's business).
DROP_RESPONSE = frozenset({
    "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
    "set-cookie", "x-request-id", "date", "server",
    # who our provider account is: not the caller's business
    "openai-organization", "openai-project", "anthropic-organization-id",
})  # fmt: skip


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

    @property
    def model(self) -> str:
        return self.req.model


class Proxy:
    def __init__(
        self,
        *,
        settings: Settings,
        wallet: Wallet,
        auth: Authenticator,
        router: Router,
        pricing: PricingHolder,
        counter: TokenCounter,
        metrics: Metrics,
        endpoints: dict[str, Endpoint],
    ) -> None:
        self._settings = settings
        self._wallet = wallet
        self._auth = auth
        self._router = router
        self._pricing = pricing
        self._counter = counter
        self._metrics = metrics
        self._endpoints = endpoints
        self._settling: set[asyncio.Future[Any]] = set()
        self._request_log = logging.getLogger("tollgate.request")
        self._leases: dict[str, str] = {}  # request id -> account id, while a hold is placed

    async def renew_leases(self) -> int:
        """Push the hold deadlines of this process's requests in flight: a hold expires only
        when its process is gone, however long its request runs."""
        by_account: dict[str, list[str]] = {}
        for request_id, account_id in list(self._leases.items()):
            by_account.setdefault(account_id, []).append(request_id)
        ttl_ms = int(self._settings.hold_ttl * 1000)
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

    # -- entry point -----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        endpoint = self._endpoints[route_path(request)]
        try:
            caller = await self._auth.authenticate(request.headers)
            body = await self._read_body(request)
            call = self._prepare(endpoint, caller, body, request.headers.get("Content-Type", ""))
            await self._admit(call)
        except errors.GatewayError as exc:
            self._metrics.rejections.labels(exc.code).inc()
            raise
        self._metrics.in_flight.inc()
        try:
            return await self._forward(request, call)
        finally:
            self._metrics.in_flight.dec()
            if not call.settled:  # nothing reached the client: release the hold, charge 0
                await self._settle(call, None, status="failed", source="none", http_status=0)

    # -- before forwarding -----------------------------------------------------------------

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self._settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise errors.RequestTooLarge(f"The request body is larger than {limit} bytes.")
        chunks = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise errors.RequestTooLarge(f"The request body is larger than {limit} bytes.")
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _prepare(self, endpoint: Endpoint, caller: Caller, body: bytes, content_type: str) -> Call:
        req = endpoint.parse(body, content_type)
        check_allowed(req.model, caller.key.models)
        table = self._pricing.table
        price = table.lookup(req.model)
        if price is None or not endpoint.can_bill(price):
            raise errors.ModelNotPriced(
                f"The model {req.model!r} has no price for {endpoint.path} on this gateway, "
                "so it cannot be used.",
                param="model",
            )
        provider = self._router.route(req.model)
        if provider is None:
            raise errors.InvalidRequest(f"No provider serves the model {req.model!r}.",
                                        param="model")  # fmt: skip
        key, account = caller.key, caller.account
        return Call(
            request_id="req_" + secrets.token_hex(16),
            caller=caller,
            endpoint=endpoint,
            req=req,
            price=price,
            provider=provider,
            limits=Limits(key.rpm, key.tpm, account.rpm, account.tpm),
            price_version=table.version,
        )

    async def _admit(self, call: Call) -> None:
        worst = call.endpoint.worst_case(
            call.req, call.price, self._counter, self._settings.default_max_output_tokens
        )
        hold = compute_cost(worst, call.price)
        est_tokens = worst.total_tokens
        t0 = time.perf_counter()
        result = await self._wallet.admit(
            call.caller.account.id,
            request_id=call.request_id,
            key_id=call.caller.key.id,
            hold=hold,
            policy=call.caller.account.hold_policy,
            est_tokens=est_tokens,
            limits=call.limits,
            hold_ttl_ms=int(self._settings.hold_ttl * 1000),
            record_ttl=self._settings.record_ttl,
            record={
                "meta": orjson.dumps(
                    {
                        "model": call.model,
                        "key_id": call.caller.key.id,
                        "project": call.caller.key.project,
                        "endpoint": call.endpoint.path,
                        "stream": call.req.stream,
                        "price_version": call.price_version,
                        "price_effective_from": (
                            call.price.effective_from.isoformat()
                            if call.price.effective_from
                            else None
                        ),
                    }
                ).decode()
            },
        )
        self._metrics.child(self._metrics.redis, "admit").observe(time.perf_counter() - t0)
        if isinstance(result, Refusal):
            call.settled = True  # nothing was held
            raise self._refusal(call, result, hold, est_tokens)
        call.admission = result
        self._metrics.holds.inc(result.hold / 1e9)  # a gauge for operators, not money
        if result.hold:
            self._leases[call.request_id] = call.caller.account.id

    def _refusal(
        self, call: Call, refusal: Refusal, hold: int, est_tokens: int
    ) -> errors.GatewayError:
        if refusal.reason == "balance":
            return errors.InsufficientBalance(
                f"Your balance is {format_usd(refusal.available)} USD, and this request may cost "
                f"up to {format_usd(hold)} USD. Top up your wallet to continue."
            )
        retry_s = max(1, -(-refusal.retry_ms // 1000)) if refusal.retry_ms >= 0 else 60
        message = ratelimit.refusal_message(
            call.limits, refusal.limit_index, refusal.retry_ms, est_tokens
        )
        return errors.RateLimited(message, headers={"Retry-After": str(retry_s)})

    # -- forwarding and relaying -----------------------------------------------------------

    async def _forward(self, request: web.Request, call: Call) -> web.StreamResponse:
        body, client_wants_usage = call.endpoint.upstream_body(call.req)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP_REQUEST}
        t0 = time.perf_counter()
        upstream = await call.provider.send(
            UpstreamRequest(path=call.endpoint.path, headers=headers, body=body)
        )
        self._metrics.child(self._metrics.upstream, call.provider.name).observe(
            time.perf_counter() - t0
        )
        try:
            content_type = upstream.headers.get("Content-Type", "")
            if call.req.stream and upstream.status == 200 and "event-stream" in content_type:
                return await self._relay_stream(request, call, upstream, t0, client_wants_usage)
            return await self._relay_body(call, upstream, t0)
        finally:
            upstream.close()

    def _response_headers(self, call: Call, upstream: UpstreamResponse) -> CIMultiDict[str]:
        out: CIMultiDict[str] = CIMultiDict()
        for name, value in upstream.headers.items():
            low = name.lower()
            if low not in DROP_RESPONSE and not low.startswith("x-ratelimit-"):
                out.add(name, value)
        upstream_id = upstream.headers.get("x-request-id")
        if upstream_id:
            out["X-Upstream-Request-Id"] = upstream_id
        out["X-Request-Id"] = call.request_id
        out["X-Model"] = call.model
        if call.admission is not None:
            out.update(ratelimit.headers(call.limits, call.admission))
        return out

    async def _relay_body(self, call: Call, upstream: UpstreamResponse, t0: float) -> web.Response:
        data = await upstream.read()
        call.upstream_seconds = time.perf_counter() - t0
        usage = call.endpoint.usage_from_body(call.req, data)
        source = "upstream"
        if usage is None and upstream.status < 400:
            usage = call.endpoint.estimate(
                call.req, call.endpoint.text_from_body(data), self._counter
            )
            source = call.endpoint.estimate_source(call.req)
        status = "settled" if upstream.status < 400 else "failed"
        cost, balance = await self._settle(
            call, usage, status=status, source=source, http_status=upstream.status
        )
        headers = self._response_headers(call, upstream)
        headers["X-Usage-Cost"] = format_usd(cost)
        headers["X-Total-Tokens"] = str(usage.total_tokens if usage else 0)
        if balance is not None:
            headers["X-Balance-Remaining"] = format_usd(balance)
        return web.Response(status=upstream.status, body=data, headers=headers)

    async def _relay_stream(
        self,
        request: web.Request,
        call: Call,
        upstream: UpstreamResponse,
        t0: float,
        client_wants_usage: bool,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=upstream.status, headers=self._response_headers(call, upstream)
        )
        decoder = SSEDecoder()
        tracker = call.endpoint.new_tracker()
        strip = not client_wants_usage
        rewrite = call.endpoint.rewrite_event
        source = "estimated"  # until the stream ends as it should
        finished = False
        try:
            await response.prepare(request)
            async for chunk in upstream.iter_chunks():
                events = decoder.feed(chunk)
                if not events:
                    continue
                mark = tracker.mark()
                out: list[bytes] = []
                for event in events:
                    kind = tracker.feed(event)
                    if kind is EventKind.USAGE_ONLY and strip:
                        continue
                    if kind is EventKind.DONE and not finished:
                        call.upstream_seconds = time.perf_counter() - t0
                        source = "upstream" if tracker.usage is not None else "estimated"
                        cost = await self._settle_stream(call, tracker, source)
                        out.append(comment(f"x-usage-cost {format_usd(cost)}"))
                        finished = True
                    out.append(rewrite(event.raw, kind, strip))
                try:
                    await response.write(b"".join(out))
                except (ConnectionResetError, asyncio.CancelledError) as exc:
                    if not finished:  # this batch never reached the client
                        tracker.truncate(mark)
                        source = "partial"
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    break
            else:
                tail = decoder.flush()
                for event in tail:
                    tracker.feed(event)
                if tail:
                    await response.write(b"".join(e.raw for e in tail))
                if not finished:  # ended without its final event: trust usage if it came
                    source = "upstream" if tracker.usage is not None else "estimated"
        except (errors.UpstreamError, errors.UpstreamTimeout) as exc:
            log.warning("stream %s broke upstream: %s", call.request_id, exc.message)
            source = "estimated"
        except ConnectionResetError:
            source = "partial"
        except asyncio.CancelledError:
            # The client went away (aiohttp cancels the handler) or the server is shutting
            # down: either way the client got what was written, and that is what it pays for.
            if not finished:
                source = "partial"
            raise
        finally:
            if not call.settled:
                call.upstream_seconds = time.perf_counter() - t0
                cost = await self._settle_stream(call, tracker, source)
                if source != "partial":
                    with contextlib.suppress(ConnectionResetError, RuntimeError):
                        await response.write(comment(f"x-usage-cost {format_usd(cost)}"))
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _settle_stream(self, call: Call, tracker: StreamTracker, source: str) -> int:
        usage = tracker.usage if source == "upstream" else None
        if usage is None:
            estimate = call.endpoint.estimate(call.req, tracker.text, self._counter)
            usage = partial_usage(tracker.usage, estimate)
        cost, _ = await self._settle(call, usage, status="settled", source=source,
                                     http_status=200)  # fmt: skip
        return cost

    # -- settling ----------------------------------------------------------------------------

    async def _settle(
        self, call: Call, usage: Usage | None, *, status: str, source: str, http_status: int
    ) -> tuple[int, int | None]:
        """Charge and release; returns (cost, balance after, or None if Redis failed and the
        charge is being retried in the background). Survives cancellation."""
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
        task = self._track(asyncio.ensure_future(attempt()))
        t0 = time.perf_counter()
        try:
            settlement = await asyncio.shield(task)
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
            self._observe(call, usage, cost, http_status, source)
            return cost, None
        finally:
            if call.admission is not None:
                self._metrics.holds.dec(call.admission.hold / 1e9)
        self._metrics.child(self._metrics.redis, "settle").observe(time.perf_counter() - t0)
        if settlement is None:
            log.error("settle of %s found no admitted request; nothing charged", call.request_id)
            return 0, None
        if settlement.shortfall and not settlement.replayed:
            self._metrics.shortfall.inc(settlement.shortfall / 1e9)
            log.warning("strict wallet %s could not pay all of %s: charged %s, short %s",
                        call.caller.account.id, call.request_id, format_usd(settlement.cost),
                        format_usd(settlement.shortfall))  # fmt: skip
        self._observe(call, usage, settlement.cost, http_status, source)
        return settlement.cost, settlement.balance

    def _track(self, task: asyncio.Future[Any]) -> asyncio.Future[Any]:
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        return task

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


def route_path(request: web.Request) -> str:
    """The client's path below /v1, which is also the provider's."""
    path = request.path
    return path[3:] if path.startswith("/v1/") else path
