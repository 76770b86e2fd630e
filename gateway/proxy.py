"""The one place that moves client traffic: auth → admit (hold) → forward → relay → settle.

Money rules kept here:
* nothing is forwarded before the admission script has placed a hold;
* every admitted request is settled exactly once (a settle that races cancellation is shielded
  and finished by a task the app awaits on shutdown);
* the cost shown to the client (``X-Usage-Cost`` or the ``: x-usage-cost`` SSE comment) is the
  cost the settle script charged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from gateway import errors, ratelimit
from gateway.auth import Authenticator, Caller
from gateway.metrics import Metrics
from gateway.pricing_holder import PricingHolder
from gateway.providers.base import Provider, UpstreamRequest, UpstreamResponse
from gateway.routing import Router
from gateway.settings import Settings
from gateway.sse import SSEDecoder, comment
from gateway.tokens import TokenCounter
from gateway.usage import EventKind, OpenAIStreamTracker, usage_from_openai_body
from gateway.wallet import Admission, Limits, Refusal, Wallet
from pricing import ModelPrice, Usage, compute_cost, format_usd

log = logging.getLogger(__name__)

# Request headers never forwarded: hop-by-hop, our own auth, and what the HTTP client recomputes.
DROP_REQUEST = frozenset(
    {
        "host",
        "authorization",
        "x-api-key",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "accept-encoding",
        "cookie",
        "expect",
    }
)
# Response headers never relayed: hop-by-hop, lengths we recompute, the provider's own limits
# and cookies (they describe our provider account, not the caller's).
DROP_RESPONSE = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "set-cookie",
        "x-request-id",
        "date",
        "server",
    }
)
USAGE_NULL_SUFFIX = b',"usage":null}'


@dataclass(slots=True)
class Call:
    """One metered request as it moves through the proxy."""

    request_id: str
    caller: Caller
    model: str
    price: ModelPrice
    provider: Provider
    path: str
    body: bytes
    payload: dict[str, Any]
    stream: bool
    limits: Limits
    prompt_estimate: int = 0
    admission: Admission | None = None
    started: float = field(default_factory=time.perf_counter)
    upstream_seconds: float = 0.0
    settled: bool = False


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
    ) -> None:
        self._settings = settings
        self._wallet = wallet
        self._auth = auth
        self._router = router
        self._pricing = pricing
        self._counter = counter
        self._metrics = metrics
        self._settling: set[asyncio.Task[Any]] = set()

    async def drain(self) -> None:
        """Wait for settles still running (called on shutdown)."""
        while self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    # -- entry point -----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        caller = await self._auth.authenticate(request.headers)
        body = await self._read_body(request)
        call = self._prepare(request, caller, body)
        self._metrics.in_flight.inc()
        try:
            await self._admit(call)
            try:
                return await self._forward(request, call)
            finally:
                if not call.settled:  # an exception escaped before any charge: release the hold
                    await self._settle(call, None, status="failed", source="none", http_status=0)
        finally:
            self._metrics.in_flight.dec()

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
        return b"".join(chunks)

    def _prepare(self, request: web.Request, caller: Caller, body: bytes) -> Call:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise errors.InvalidRequest(
                "The request body is not valid JSON."
                if body
                else "The request body is empty; send a JSON object."
            ) from None
        if not isinstance(payload, dict):
            raise errors.InvalidRequest("The request body must be a JSON object.")
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise errors.InvalidRequest(
                "You must provide a model parameter (a string).", param="model"
            )
        stream = payload.get("stream", False)
        if stream is not None and not isinstance(stream, bool):
            raise errors.InvalidRequest("'stream' must be a boolean.", param="stream")
        price = self._pricing.table.lookup(model)
        if price is None or not (price.is_token_priced or price.per_request is not None):
            raise errors.ModelNotPriced(
                f"The model {model!r} has no price on this gateway, so it cannot be used.",
                param="model",
            )
        provider = self._router.route(model)
        if provider is None:
            raise errors.InvalidRequest(f"No provider serves the model {model!r}.", param="model")
        key, account = caller.key, caller.account
        return Call(
            request_id="req_" + uuid.uuid4().hex,
            caller=caller,
            model=model,
            price=price,
            provider=provider,
            path=route_path(request),
            body=body,
            payload=payload,
            stream=bool(stream),
            limits=Limits(key.rpm, key.tpm, account.rpm, account.tpm),
        )

    def _max_output(self, call: Call, path: str) -> int:
        if path == "/embeddings":
            return 0
        p = call.payload
        for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
            value = p.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                ceiling = call.price.max_output_tokens
                return min(value, ceiling) if ceiling else value
        return call.price.max_output_tokens or self._settings.default_max_output_tokens

    async def _admit(self, call: Call) -> None:
        path = call.path
        n = call.payload.get("n", 1)
        n = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
        call.prompt_estimate = self._counter.estimate_prompt(call.payload, call.model)
        max_out = self._max_output(call, path) * n
        worst = Usage(input_tokens=call.prompt_estimate, output_tokens=max_out)
        hold = compute_cost(worst, call.price)
        est_tokens = call.prompt_estimate + max_out
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
                "model": call.model,
                "key_id": call.caller.key.id,
                "project": call.caller.key.project,
                "endpoint": path,
                "stream": "1" if call.stream else "0",
                "price_version": self._pricing.table.version,
            },
        )
        if isinstance(result, Refusal):
            call.settled = True  # nothing was held
            self._refuse(call, result, hold, est_tokens)
        assert isinstance(result, Admission)
        call.admission = result

    def _refuse(self, call: Call, refusal: Refusal, hold: int, est_tokens: int) -> None:
        if refusal.reason == "balance":
            self._metrics.rejections.labels("insufficient_balance").inc()
            raise errors.InsufficientBalance(
                f"Your balance is {format_usd(refusal.available)} USD, and this request may cost "
                f"up to {format_usd(hold)} USD. Top up your wallet to continue."
            )
        self._metrics.rejections.labels("rate_limit_exceeded").inc()
        retry_s = max(1, -(-refusal.retry_ms // 1000)) if refusal.retry_ms >= 0 else 60
        raise errors.RateLimited(
            ratelimit.refusal_message(
                call.limits, refusal.limit_index, refusal.retry_ms, est_tokens
            ),
            headers={"Retry-After": str(retry_s)},
        )

    # -- forwarding and relaying -----------------------------------------------------------

    async def _forward(self, request: web.Request, call: Call) -> web.StreamResponse:
        path = call.path
        body_out, client_wants_usage = self._upstream_body(call)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP_REQUEST}
        t0 = time.perf_counter()
        upstream = await call.provider.send(
            UpstreamRequest(path=path, headers=headers, body=body_out)
        )
        try:
            content_type = upstream.headers.get("Content-Type", "")
            if call.stream and upstream.status == 200 and "text/event-stream" in content_type:
                return await self._relay_stream(request, call, upstream, t0, client_wants_usage)
            return await self._relay_body(call, upstream, t0)
        finally:
            upstream.close()

    def _upstream_body(self, call: Call) -> tuple[bytes, bool]:
        """The body to send; for streams, usage is always requested (and stripped again)."""
        payload = call.payload
        if not call.stream:
            return call.body, True
        options = payload.get("stream_options")
        wants = isinstance(options, dict) and options.get("include_usage") is True
        if wants:
            return call.body, True
        if not wants:
            payload = {
                **payload,
                "stream_options": {
                    **(options if isinstance(options, dict) else {}),
                    "include_usage": True,
                },
            }
        return orjson.dumps(payload), wants

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
        usage, _ = usage_from_openai_body(data) if data[:1] == b"{" else (None, None)
        source = "upstream"
        if usage is None and upstream.status < 400:
            usage = Usage(
                input_tokens=self._counter.estimate_prompt(call.payload, call.model, safety=False),
                output_tokens=self._counter.count(_body_text(data), call.model),
            )
            source = "estimated"
        status = "settled" if upstream.status < 400 else "failed"
        settlement_cost, balance = await self._settle(
            call, usage, status=status, source=source, http_status=upstream.status
        )
        headers = self._response_headers(call, upstream)
        headers["X-Usage-Cost"] = format_usd(settlement_cost)
        headers["X-Total-Tokens"] = str(usage.total_tokens if usage else 0)
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
        tracker = OpenAIStreamTracker()
        strip = not client_wants_usage
        source = "estimated"  # until the stream ends as it should
        try:
            await response.prepare(request)
            finished = False
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
                    if kind is EventKind.DONE:
                        call.upstream_seconds = time.perf_counter() - t0
                        source = "upstream" if tracker.usage is not None else "estimated"
                        cost, _ = await self._settle_stream(call, tracker, source)
                        out.append(comment(f"x-usage-cost {format_usd(cost)}"))
                        finished = True
                    raw = event.raw
                    if strip and kind is EventKind.CHUNK and raw.endswith(b"}\n\n"):
                        raw = _strip_usage_null(raw)
                    out.append(raw)
                try:
                    await response.write(b"".join(out))
                except ConnectionResetError:
                    tracker.truncate(mark)
                    source = "partial"
                    break
                if finished:
                    break
            else:
                tail = decoder.flush()
                if tail:
                    for event in tail:
                        tracker.feed(event)
                    await response.write(b"".join(e.raw for e in tail))
                # The stream ended without [DONE]: trust usage if it came, else estimate.
                source = "upstream" if tracker.usage is not None else "estimated"
        except (errors.UpstreamError, errors.UpstreamTimeout) as exc:
            log.warning("stream %s broke upstream: %s", call.request_id, exc.message)
            source = "estimated"
        finally:
            if not call.settled:
                call.upstream_seconds = time.perf_counter() - t0
                cost, _ = await self._settle_stream(call, tracker, source)
                if source != "partial":
                    with contextlib.suppress(ConnectionResetError, RuntimeError):
                        await response.write(comment(f"x-usage-cost {format_usd(cost)}"))
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _settle_stream(
        self, call: Call, tracker: OpenAIStreamTracker, source: str
    ) -> tuple[int, int]:
        usage = tracker.usage if source == "upstream" else None
        if usage is None:
            usage = Usage(
                input_tokens=self._counter.estimate_prompt(call.payload, call.model, safety=False),
                output_tokens=self._counter.count(tracker.text, call.model),
            )
        return await self._settle(call, usage, status="settled", source=source, http_status=200)

    # -- settling ----------------------------------------------------------------------------

    async def _settle(
        self, call: Call, usage: Usage | None, *, status: str, source: str, http_status: int
    ) -> tuple[int, int]:
        """Charge and release; returns (cost charged, balance after). Survives cancellation."""
        call.settled = True
        cost = compute_cost(usage, call.price) if usage is not None else 0
        usage = usage or Usage()
        record = {
            "status": status,
            "usage_source": source,
            "http_status": str(http_status),
            "input_tokens": str(usage.input_tokens),
            "output_tokens": str(usage.output_tokens),
            "cache_read_tokens": str(usage.cache_read_tokens),
            "cache_write_tokens": str(usage.cache_write_tokens),
            "reasoning_tokens": str(usage.reasoning_tokens),
            "finished_ms": str(int(time.time() * 1000)),
        }
        task = asyncio.ensure_future(
            self._wallet.settle(
                call.caller.account.id,
                request_id=call.request_id,
                key_id=call.caller.key.id,
                cost=cost,
                tokens=usage.total_tokens,
                limits=call.limits,
                record_ttl=self._settings.record_ttl,
                record=record,
            )
        )
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        settlement = await asyncio.shield(task)
        if settlement is None:
            log.error("settle of %s found no admitted request; nothing charged", call.request_id)
            return 0, 0
        self._observe(call, usage, settlement.cost, status, http_status)
        return settlement.cost, settlement.balance

    def _observe(self, call: Call, usage: Usage, cost: int, status: str, http_status: int) -> None:
        m = self._metrics
        total = time.perf_counter() - call.started
        m.requests.labels(call.model, call.provider.name, str(http_status or "error")).inc()
        m.record_usage(call.model, usage, cost / 1e9)  # metrics only; the ledger stays exact
        m.duration.observe(total)
        m.overhead.observe(max(total - call.upstream_seconds, 0.0))


def _strip_usage_null(raw: bytes) -> bytes:
    """Undo what forcing ``include_usage`` added to an ordinary chunk: ``"usage":null``."""
    end = raw.rfind(b"}")
    if raw[end - len(USAGE_NULL_SUFFIX) + 1 : end + 1] == USAGE_NULL_SUFFIX:
        return raw[: end - len(USAGE_NULL_SUFFIX) + 1] + b"}" + raw[end + 1 :]
    return raw


def _body_text(data: bytes) -> str:
    """The generated text of a non-streaming answer that came without usage."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ""
    parts: list[str] = []
    for choice in doc.get("choices", []) if isinstance(doc, dict) else []:
        if isinstance(choice, dict):
            message = choice.get("message")
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                parts.append(message["content"])
            elif isinstance(choice.get("text"), str):
                parts.append(choice["text"])
    return "".join(parts)


def route_path(request: web.Request) -> str:
    """The client's path below /v1, which is also the provider's."""
    path = request.path
    return path[3:] if path.startswith("/v1/") else path
