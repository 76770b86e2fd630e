"""The one place that moves client traffic: auth → admit (hold) → forward → relay → settle.

Money rules kept here:
* nothing is forwarded before the admission script has placed a hold;
* every admitted request is settled exactly once (see :mod:`gateway.billing.settler`), whatever way
  it ends: answered, failed upstream, cut by the client, or cancelled by shutdown;
* the cost shown to the client (``X-Usage-Cost`` or the ``: x-usage-cost`` SSE comment) is the
  cost the settle script charged. When the request's hold covers its cost the script cannot
  charge anything else, so the answer goes out without waiting for Redis's reply (one round
  trip off every answer); otherwise it waits for the charge Redis reports.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from multidict import CIMultiDict

from gateway import errors
from gateway.apis import Endpoint
from gateway.apis.base import StreamTracker
from gateway.apis.tokens import TokenCounter
from gateway.apis.tracking import KeptBudget, partial_usage
from gateway.apis.usage_checks import anomaly, check_usage, unreadable_body
from gateway.billing.holds import Hold, HoldCeilings, size_hold
from gateway.billing.journal import Journal
from gateway.billing.ledger import admission_field
from gateway.billing.records import new_request_id
from gateway.billing.settler import Call, Settler
from gateway.billing.wallet import Limits, Refusal, Wallet
from gateway.edge import ratelimit_headers
from gateway.edge.access import check_may_call_models
from gateway.edge.auth import Authenticator, Caller
from gateway.edge.http_server import with_request_id
from gateway.edge.httpjson import read_body
from gateway.edge.model_access import check_allowed, check_configured, unconfigured_providers
from gateway.edge.stalled_writes import StalledWrites
from gateway.edge.stream_relay import StreamRelay
from gateway.observability.metrics import Metrics
from gateway.prices.holder import PricingHolder
from gateway.settings import Settings
from gateway.store.redis_errors import StoreUnavailable
from gateway.upstream.provider import UpstreamRequest, UpstreamResponse
from gateway.upstream.routing import Router
from pricing import Usage, format_usd

log = logging.getLogger(__name__)

# The request's id, kept on the aiohttp request for the error middleware (every error answer
# names it).
REQUEST_ID = web.RequestKey("request_id", str)

# The only request headers that reach a provider (an allow-list: a customer's own
# OpenAI-Organization / OpenAI-Project, cookies, User-Agent or X-Forwarded-For must never reach
# the operator's provider account next to the operator's key). Lengths, hosts and encodings
# are the HTTP client's; credentials are the provider's (gateway.upstream).
FORWARD_REQUEST = frozenset({
    "content-type", "accept",
    "anthropic-version", "anthropic-beta",
    "openai-beta",
    "idempotency-key",
})  # fmt: skip
# Response headers never relayed: hop-by-hop, lengths we recompute, and cookies and limits of
# our provider account (they are not the caller's business).
DROP_RESPONSE = frozenset({
    "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
    "set-cookie", "x-request-id", "date", "server",
    # who our provider account is: not the caller's business
    "openai-organization", "openai-project", "anthropic-organization-id",
})  # fmt: skip


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
        journal: Journal | None = None,
    ) -> None:
        self._settings = settings
        self._wallet = wallet
        self._auth = auth
        self._router = router
        self._pricing = pricing
        self._counter = counter
        self._metrics = metrics
        self._endpoints = endpoints
        self._settler = Settler(settings=settings, wallet=wallet, metrics=metrics, journal=journal)
        self._kept = KeptBudget()  # what this process's stream trackers keep unparsed
        self._stalled = StalledWrites(settings.client_write_timeout, metrics.streams_cut.inc)
        self._unconfigured = unconfigured_providers(settings.providers)  # no API key: refused
        # Per plan: what caps the hold of a request without max_tokens (gateway.billing.holds).
        self._ceilings = {name: HoldCeilings(settings.hold_output_tokens, plan.hold_max)
                          for name, plan in settings.plans.items()}  # fmt: skip
        self._default_ceilings = self._ceilings.get(
            "default", HoldCeilings(settings.hold_output_tokens)
        )

    async def renew_leases(self) -> int:
        return await self._settler.renew_leases()

    async def cut_stalled_streams(self) -> None:
        """End streams whose client stopped reading (runs for the app's life)."""
        await self._stalled.run_forever()

    async def replay_journal(self) -> None:
        """Apply journaled settles that Redis has not taken yet (runs for the app's life)."""
        await self._settler.replay_forever()

    async def drain(self, seconds: float = 30.0) -> None:
        """Wait for settles still running (called on shutdown), at most ``seconds``."""
        await self._settler.drain(seconds)

    # -- entry point -----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        endpoint = self._endpoints[route_path(request)]
        request_id = request[REQUEST_ID] = new_request_id()
        try:
            caller = await self._auth.authenticate(request)  # and where from: allowed_ips
            check_may_call_models(caller)  # an active account, not a viewer: nothing read yet
            body = await read_body(request, self._settings.max_body_bytes,
                                   self._settings.client_body_timeout)  # fmt: skip
            call = self._prepare(endpoint, caller, body, request.headers.get("Content-Type", ""),
                                 request_id)  # fmt: skip
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
                await self._settler.settle(
                    call, None, status="failed", source="none", http_status=0
                )

    # -- before forwarding -----------------------------------------------------------------

    def _prepare(
        self, endpoint: Endpoint, caller: Caller, body: bytes, content_type: str, request_id: str
    ) -> Call:
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
        check_configured(req.model, provider.name, self._unconfigured)
        key, account = caller.key, caller.account
        return Call(
            request_id=request_id,
            caller=caller,
            endpoint=endpoint,
            req=req,
            price=price,
            provider=provider,
            limits=Limits(key.rpm, key.tpm, account.rpm, account.tpm, key.monthly_spend_limit),
            price_version=table.version,
        )

    async def _admit(self, call: Call) -> None:
        account = call.caller.account
        sized = size_hold(
            call.endpoint, call.req, call.price, self._counter,
            default_output=self._settings.default_max_output_tokens,
            ceilings=self._ceilings.get(account.plan, self._default_ceilings),
        )  # fmt: skip
        hold = sized.amount
        est_tokens = sized.worst.total_tokens  # the rate limits count the whole worst case
        call.output_bound = sized.worst.output_tokens
        t0 = time.perf_counter()
        admitting = self._wallet.admit(
            call.caller.account.id,
            request_id=call.request_id,
            key_id=call.caller.key.id,
            hold=hold,
            policy=call.caller.account.hold_policy,
            est_tokens=est_tokens,
            limits=call.limits,
            hold_ttl_ms=self._settings.hold_ttl_ms,
            record_ttl=self._settings.record_ttl,
            record={
                "k": call.caller.key.id,
                "p": call.caller.key.project,
                "m": call.model,
                "x": admission_field(
                    call.endpoint.path,
                    call.req.stream,
                    call.price_version,
                    call.price.effective_from.isoformat() if call.price.effective_from else None,
                    sized.worst_cost if sized.capped else None,
                ),
            },
        )
        try:
            result = await admitting
        except (asyncio.CancelledError, StoreUnavailable):
            # The outcome is unknown: the script may have run, may be on its way, or may never
            # run. Release at no cost, journaled like any settle: a hold it placed goes now,
            # not at its deadline, and if the admission has not run yet, the release's
            # tombstone makes it place none (settle_v5), in whatever order the two arrive.
            self._settler.start(call, None, status="failed", source="none", http_status=0)
            raise
        self._metrics.child(self._metrics.redis, "admit").observe(time.perf_counter() - t0)
        if isinstance(result, Refusal):
            call.settled = True  # nothing was held
            raise self._refusal(call, result, sized, est_tokens)
        call.admission = result
        self._metrics.holds.inc(result.hold / 1e9)  # a gauge for operators, not money
        if result.hold:
            self._settler.lease(call)

    def _refusal(
        self, call: Call, refusal: Refusal, hold: Hold, est_tokens: int
    ) -> errors.GatewayError:
        if refusal.reason == "balance":
            return errors.InsufficientBalance(balance_message(call, refusal.available, hold))
        if refusal.reason in ("monthly_limit", "key_limit"):
            return errors.MonthlyLimitReached(limit_message(refusal, hold.amount))
        retry_s = max(1, -(-refusal.retry_ms // 1000)) if refusal.retry_ms >= 0 else 60
        message = ratelimit_headers.refusal_message(
            call.limits, refusal.limit_index, refusal.retry_ms, est_tokens
        )
        return errors.RateLimited(message, headers={"Retry-After": str(retry_s)})

    # -- forwarding and relaying -----------------------------------------------------------

    async def _forward(self, request: web.Request, call: Call) -> web.StreamResponse:
        body, client_wants_usage = call.endpoint.upstream_body(call.req)
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARD_REQUEST}
        t0 = time.perf_counter()
        upstream = await call.provider.send(
            UpstreamRequest(path=call.endpoint.path, headers=headers, body=body)
        )
        try:  # from here on the answer is closed whatever happens, its connection freed
            self._metrics.child(self._metrics.upstream, call.provider.name).observe(
                time.perf_counter() - t0
            )
            content_type = upstream.headers.get("Content-Type", "")
            if call.req.stream and upstream.status == 200 and "event-stream" in content_type:
                relay = StreamRelay(
                    call, upstream, started=t0, client_wants_usage=client_wants_usage,
                    kept=self._kept, settle=self._settle_stream, progress=self._progress,
                    progress_every=self._settings.journal_stream_interval,
                )  # fmt: skip
                self._stalled.watch(relay)
                try:
                    return await relay.run(request, self._response_headers(call, upstream))
                finally:
                    self._stalled.forget(relay)
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
            out.update(ratelimit_headers.headers(call.limits, call.admission))
        return out

    async def _relay_body(self, call: Call, upstream: UpstreamResponse, t0: float) -> web.Response:
        data = await upstream.read()
        call.upstream_seconds = time.perf_counter() - t0
        usage, source = None, "none"
        if upstream.status < 400:  # a provider's error answer costs nothing, usage or not
            reported = call.endpoint.usage_from_body(call.req, data)
            if reported is None:
                call.anomalies.extend(unreadable_body(data, upstream.headers))
            usage, source = self._believed(call, reported)
            if usage is None:
                usage = call.endpoint.estimate(
                    call.req, call.endpoint.text_from_body(data), self._counter
                )
                source = call.endpoint.estimate_source(call.req)
        status = "settled" if upstream.status < 400 else "failed"
        cost, balance = await self._charge(
            call, usage, status=status, source=source, http_status=upstream.status
        )
        headers = self._response_headers(call, upstream)
        headers["X-Usage-Cost"] = format_usd(cost)
        headers["X-Total-Tokens"] = str(usage.total_tokens if usage else 0)
        if balance is not None:
            headers["X-Balance-Remaining"] = format_usd(balance)
        if upstream.status >= 400:
            data = with_request_id(data, call.request_id)
        return web.Response(status=upstream.status, body=data, headers=headers)

    def _believed(self, call: Call, usage: Usage | None) -> tuple[Usage | None, str]:
        """The provider's usage if it is believable (see usage_checks), with its source."""
        if usage is None:
            return None, "estimated"
        checked, anomalies = check_usage(usage, call.output_bound)
        call.anomalies.extend(anomalies)
        return checked, "upstream" if checked is not None else "estimated"

    def _progress(self, call: Call, tracker: StreamTracker) -> None:
        """Journal a long stream's cost so far (charged only if this process dies first)."""
        estimate = call.endpoint.estimate(call.req, tracker.text, self._counter)
        self._settler.progress(call, partial_usage(tracker.usage, estimate))

    async def _settle_stream(self, call: Call, tracker: StreamTracker, source: str) -> int:
        reported, believed = None, "estimated"
        if tracker.usage is not None:
            reported, believed = self._believed(call, tracker.usage)
        elif tracker.unreadable_usage is not None:
            call.anomalies.append(anomaly("unreadable_usage", tracker.unreadable_usage))
        if source == "upstream" and reported is not None:
            usage = reported
        else:  # what was relayed, with what the provider reported of it (if believable)
            source = believed if source == "upstream" else source
            estimate = call.endpoint.estimate(call.req, tracker.text, self._counter)
            usage = partial_usage(reported, estimate)
        cost, _ = await self._charge(call, usage, status="settled", source=source,
                                     http_status=200)  # fmt: skip
        return cost

    async def _charge(
        self, call: Call, usage: Usage | None, *, status: str, source: str, http_status: int
    ) -> tuple[int, int | None]:
        """Settle; (cost, balance after) for the answer. When the settle can only charge its cost,
        the answer does not wait for Redis's reply: the settle finishes in its own task, and
        this process's reads of the wallet wait for it. The balance is then the admission's
        view of it less this charge (exact unless other requests of the account overlapped)."""
        settling = self._settler.start(
            call, usage, status=status, source=source, http_status=http_status
        )
        admission = call.admission
        if settling.certain and admission is not None:
            return settling.cost, admission.available + admission.hold - settling.cost
        return await asyncio.shield(settling.task)


def balance_message(call: Call, available: int, hold: Hold) -> str:
    """Why a request was refused for its balance: what it needed set aside, and (when its
    output is priced) how ``max_tokens`` makes that less."""
    needed = (f"Your balance is {format_usd(available)} USD, and this request may cost up to "
              f"{format_usd(hold.amount)} USD")  # fmt: skip
    output = hold.usage.output_tokens
    if not output or not call.price.for_prompt(hold.usage.prompt_tokens).output:
        return f"{needed}. Top up your wallet to continue."
    field = call.endpoint.max_tokens_fields[-1]
    lower = "a lower " if call.endpoint.requested_output(call.req) is not None else ""
    return (f"{needed} (its prompt plus up to {output} output tokens); set {lower}{field} to "
            "hold less. Top up your wallet to continue.")  # fmt: skip


def limit_message(refusal: Refusal, hold: int) -> str:
    """Why a request was refused for a monthly limit (the account's, or its key's cap)."""
    whose = "This account's monthly limit" if refusal.reason == "monthly_limit" else (
        "This API key's monthly spend limit")  # fmt: skip
    counted = "spent or held" if refusal.reason == "monthly_limit" else "spent"
    return (f"{whose} of {format_usd(refusal.limit)} USD is reached: {format_usd(refusal.spent)} "
            f"USD {counted} this month (UTC), and this request may cost up to {format_usd(hold)}"
            " USD. It resumes next month, or when the limit is raised.")  # fmt: skip


def route_path(request: web.Request) -> str:
    """The client's path below /v1, which is also the provider's."""
    path = request.path
    return path[3:] if path.startswith("/v1/") else path
