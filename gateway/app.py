"""The application factory: every dependency passed in, nothing global."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from redis.exceptions import RedisClusterException, RedisError

from gateway import errors
from gateway.apis import default_endpoints
from gateway.apis.tokens import TokenCounter
from gateway.billing.accounts import Directory
from gateway.billing.feed import LedgerRelay
from gateway.billing.free_renewal import FreeQuotaRenewer, renew_free_quota_forever
from gateway.billing.hold_reaper import reap_forever, renew_forever
from gateway.billing.journal import Journal
from gateway.billing.lua_scripts import RedisPyScripts, ScriptCaller
from gateway.billing.receipts import Receipts
from gateway.billing.records import new_request_id
from gateway.billing.vouchers import Vouchers
from gateway.billing.wallet import Wallet
from gateway.edge.admin import Admin
from gateway.edge.auth import Authenticator
from gateway.edge.client_api import ClientApi
from gateway.edge.events_api import EventsApi
from gateway.edge.http_server import render
from gateway.edge.httpjson import json_response
from gateway.edge.model_access import model_list
from gateway.edge.openapi import openapi_route
from gateway.edge.owner_api import OwnerApi
from gateway.edge.payments_api import PaymentsApi
from gateway.edge.proxy import REQUEST_ID, Proxy
from gateway.edge.receipts_api import ReceiptsApi
from gateway.events.account_delivery import EventHandler
from gateway.events.dispatcher import Dispatcher
from gateway.observability.metrics import Metrics, exposition
from gateway.payments.service import Payments
from gateway.prices.holder import PricingHolder
from gateway.prices.loading import load_pricing
from gateway.prices.reload import PricingReloader
from gateway.settings import Settings
from gateway.store.breaker import Breaker
from gateway.store.redis_errors import StoreError, StoreRefused, classify
from gateway.upstream.anthropic_provider import AnthropicProvider
from gateway.upstream.http1 import Pool
from gateway.upstream.mock import MockProvider
from gateway.upstream.openai_compatible import OpenAICompatibleProvider
from gateway.upstream.provider import Provider
from gateway.upstream.routing import Router
from pricing import PriceTable

log = logging.getLogger(__name__)

PROXY = web.AppKey("proxy", Proxy)
REDIS = web.AppKey("redis", object)
PRICING = web.AppKey("pricing", PricingHolder)
WALLET = web.AppKey("wallet", Wallet)
AUTH = web.AppKey("auth", Authenticator)
METRICS = web.AppKey("metrics", Metrics)
FREE_RENEWAL = web.AppKey("free_renewal", FreeQuotaRenewer)
PAYMENTS = web.AppKey("payments", Payments)  # its auto_topups.handle takes account events

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


BILLING_DOWN = "Billing is unavailable right now, so no request can be metered; try again shortly."


def error_middleware(breaker: Breaker) -> Any:
    """Renders every error OpenAI-shaped; a Redis failure trips ``breaker``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if breaker.is_open() and request.path.startswith(("/v1/", "/admin/")):
                raise errors.BillingUnavailable(BILLING_DOWN)
            return await handler(request)
        except errors.GatewayError as exc:
            return _render(request, exc)
        except (StoreError, RedisError, RedisClusterException) as exc:
            if isinstance(classify(exc), StoreRefused):
                # Redis refused this one command (bad arguments: a check missed them). Only
                # this request fails; Redis is fine, so the breaker, which would refuse every
                # customer on this worker, stays shut.
                log.error("Redis refused a command for %s %s", request.method, request.path,
                          exc_info=exc)  # fmt: skip
                return _render(request, errors.GatewayError(
                    "The gateway failed unexpectedly; nothing was charged."))  # fmt: skip
            # Unreachable, timed out, out of memory, read-only after a failover: all fail
            # closed with a 503, never a 500 and never free traffic.
            breaker.trip()
            log.warning("billing store unreachable: %s", exc)
            return _render(request, errors.BillingUnavailable(BILLING_DOWN))
        except ConnectionError:  # the client went away (a socket error, not Redis's)
            raise
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _render(request, _http_error(exc))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return _render(request, errors.GatewayError(
                "The gateway failed unexpectedly; nothing was charged."))  # fmt: skip

    return middleware


async def eviction_policies(redis: Any) -> list[str]:
    """The ``maxmemory_policy`` of every Redis primary (INFO works where CONFIG is refused)."""
    info = await redis.info("memory")
    if isinstance(info, dict) and "maxmemory_policy" not in info:  # a cluster: per node
        return [str(node.get("maxmemory_policy")) for node in info.values()
                if isinstance(node, dict)]  # fmt: skip
    return [str(info.get("maxmemory_policy"))]


def metrics_handler(metrics: Metrics, token: str | None) -> Handler:
    """``GET /metrics``: Prometheus text; with ``token`` set, only for ``Bearer <token>``."""

    async def metrics_view(request: web.Request) -> web.Response:
        if token is not None:
            sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(sent.encode(), token.encode()):
                raise errors.InvalidApiKey("/metrics needs the metrics token (Authorization: "
                                           "Bearer ...).")  # fmt: skip
        response = web.Response(body=exposition(metrics))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return metrics_view


def _http_error(exc: web.HTTPException) -> errors.GatewayError:
    err = errors.GatewayError(exc.reason)
    err.status = exc.status
    err.type = "invalid_request_error"
    err.code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "invalid_request")
    return err


def _render(request: web.Request, exc: errors.GatewayError) -> web.Response:
    """The error answer, with the request's id (the proxy names one as soon as it starts;
    any other error gets its own, so support can find it in the log)."""
    request_id = request.get(REQUEST_ID) or new_request_id()
    if exc.status >= 500:
        log.warning("%s answered %d %s: %s", request_id, exc.status, exc.code, exc.message)
    return render(exc, request_id)


def build_providers(settings: Settings, pool: Pool, counter: TokenCounter) -> Router:
    routes: list[tuple[tuple[str, ...], Provider]] = []
    for config in settings.providers:
        provider: Provider
        if config.kind == "mock":
            provider = MockProvider(config.name, counter)
        else:
            http = AnthropicProvider if config.kind == "anthropic" else OpenAICompatibleProvider
            provider = http(
                config,
                pool,
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                first_byte_timeout=settings.first_byte_timeout,
                total_timeout=settings.total_timeout,
            )
        routes.append((config.models, provider))
    return Router(routes)


def create_app(
    settings: Settings,
    *,
    redis: Any,
    admin_token_sha256: str,
    registry: CollectorRegistry | None = None,
    pool: Pool | None = None,
    pricing: PriceTable | None = None,
    counter: TokenCounter | None = None,
    scripts: ScriptCaller | None = None,
    event_handlers: Sequence[EventHandler] = (),
) -> web.Application:
    """Build the gateway. ``redis`` is a redis.asyncio client the caller owns; ``scripts``
    runs the wallet's Lua (default: through ``redis``; see :mod:`gateway.store.fast_client`);
    ``event_handlers`` see every account event before its webhook (gateway.events.dispatcher)."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(registry, settings.metrics_dir)
    holder = PricingHolder(pricing if pricing is not None else load_pricing(settings.pricing_file))
    metrics.set_pricing_version(holder.table.version)

    def expect_models(table: PriceTable) -> None:  # their series start at 0 (dashboards)
        served: Any = model_list(table, settings.providers, None)["data"]
        metrics.expect_models((m["id"], m["owned_by"]) for m in served)

    expect_models(holder.table)
    reloader = PricingReloader(settings.pricing_file, holder, metrics, on_load=expect_models)
    counter = counter or TokenCounter()
    breaker = Breaker()
    directory = Directory(redis)
    scripts = scripts or RedisPyScripts(redis)
    relay = LedgerRelay(redis, scripts, retention_s=settings.ledger_retention)
    wallet = Wallet(redis, scripts, on_ledger=relay.touched,
                    ledger_retention=settings.ledger_retention)  # fmt: skip
    auth = Authenticator(directory, trusted_proxies=settings.trusted_proxies)
    endpoints = default_endpoints(settings.aliases)
    vouchers = Vouchers(redis, wallet)
    renewer = FreeQuotaRenewer(redis, scripts, directory, settings.plans, on_ledger=relay.touched,
                               ledger_retention=settings.ledger_retention)  # fmt: skip
    admin = Admin(directory=directory, wallet=wallet, auth=auth, token_sha256=admin_token_sha256,
                  redis=redis, plans=settings.plans, vouchers=vouchers)  # fmt: skip

    app = web.Application(
        middlewares=[error_middleware(breaker)], client_max_size=settings.max_body_bytes + 1
    )
    app[REDIS] = redis
    app[PRICING] = holder
    app[WALLET] = wallet
    app[AUTH] = auth
    app[METRICS] = metrics
    app[FREE_RENEWAL] = renewer
    app.cleanup_ctx.append(metrics.publishing)  # first in, so last out
    payments = app[PAYMENTS] = Payments(settings.payments, redis=redis, wallet=wallet,
                                        directory=directory, on_ledger=relay.touched,
                                        ledger_retention=settings.ledger_retention)  # fmt: skip
    admin.money.refund_topup = payments.refunds.refund  # a Stripe top-up: through Stripe first
    # The auto top-up's payment is asked for when its wallet_balance_low event is dispatched.
    dispatcher = Dispatcher(redis, settings.webhooks,
                            handlers=[payments.auto_topups.handle, *event_handlers],
                            retention_s=settings.ledger_retention)  # fmt: skip
    app.cleanup_ctx.append(payments.running)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        own_pool = pool is None
        http = pool or Pool(limit=settings.pool_size)
        await asyncio.get_running_loop().run_in_executor(None, counter.warm)
        journal = Journal(settings.data_dir / "journal", fsync=settings.journal_fsync)
        journal.open()  # adopts what dead gateway processes left unsettled
        app[PROXY] = Proxy(
            endpoints=endpoints,
            settings=settings,
            wallet=wallet,
            auth=auth,
            router=build_providers(settings, http, counter),
            pricing=holder,
            counter=counter,
            metrics=metrics,
            journal=journal,
        )
        reap_every = min(max(settings.hold_ttl / 4, 0.5), 30.0)
        tasks = [
            asyncio.create_task(app[PROXY].replay_journal(), name="journal replay"),
            asyncio.create_task(app[PROXY].cut_stalled_streams(), name="stalled streams"),
            asyncio.create_task(relay.run_forever(), name="ledger relay"),
            asyncio.create_task(dispatcher.run_forever(), name="event dispatcher"),
            asyncio.create_task(reap_forever(redis, wallet, reap_every), name="hold reaper"),
            asyncio.create_task(
                renew_free_quota_forever(renewer, redis, settings.free_renewal_interval),
                name="free quota renewal",
            ),
            asyncio.create_task(
                reloader.watch(settings.pricing_poll_interval), name="pricing reload"
            ),
            asyncio.create_task(
                renew_forever(app[PROXY], interval=settings.hold_ttl / 3), name="hold renewal"
            ),
        ]
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # SIGHUP reloads prices at once (only where this loop owns signals).
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.wake.set)
        yield
        for task in tasks:
            task.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=5.0)
        for task in stuck:  # a task that swallowed its cancellation must not hang shutdown
            where = io.StringIO()
            task.print_stack(file=where)
            log.error("background task %r did not stop when cancelled:\n%s", task.get_name(),
                      where.getvalue())  # fmt: skip
        await app[PROXY].drain(seconds=settings.shutdown_timeout)
        journal.close()  # what is still pending stays on disk for the next start
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(settings.redis_timeout):
                await relay.close()
        if own_pool:
            await http.close()

    app.cleanup_ctx.append(lifecycle)

    async def proxied(request: web.Request) -> web.StreamResponse:
        return await request.app[PROXY].handle(request)

    async def healthz(request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(1.0):
                policies = await eviction_policies(redis)
        except Exception as exc:
            return json_response(
                {"status": "unavailable", "redis": str(exc) or "timeout"}, status=503
            )
        unsafe = sorted(set(policies) - {"noeviction"})
        if unsafe:  # Redis could drop wallet keys when full: money would vanish silently
            return json_response({"status": "unavailable", "redis": (
                f"maxmemory-policy is {', '.join(unsafe)}; Tollgate needs noeviction (a full "
                "Redis must refuse writes, not evict wallets, holds or ledgers)")},
                status=503)  # fmt: skip
        return json_response({"status": "ok", "pricing_version": holder.table.version})

    app.add_routes(
        [
            *(web.post("/v1" + path, proxied) for path in endpoints),
            *ClientApi(auth=auth, wallet=wallet, vouchers=vouchers, pricing=holder,
                       providers=settings.providers).routes(),
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/metrics", metrics_handler(metrics, settings.metrics_token)),
            openapi_route(),
            *admin.routes(),
            *EventsApi(check=admin.check, directory=directory,
                       listing=dispatcher.listing).routes(),
            *OwnerApi(auth=auth, directory=directory, guards=admin.guards).routes(),
            *ReceiptsApi(check=admin.check, directory=directory, auth=auth,
                         receipts=Receipts(redis), issuer=settings.receipt_issuer).routes(),
            *PaymentsApi(payments=payments, check_admin=admin.check, directory=directory,
                         check_topup=admin.money.check_topup, auth=auth).routes(),
        ]
    )
    return app
