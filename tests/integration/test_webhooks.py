"""Events out (issue 19, docs/guards.md): the dispatcher sends every account's events to its
webhook, signed (checked here with README's recipe), in order per account, at least once and
with stable ids; two gateway processes share the work, and one killed mid-delivery loses
nothing. The receiver is a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from gateway.apis.tokens import TokenCounter
from gateway.app import create_app
from gateway.billing.timestamps import utc_ms
from gateway.events import feed_group
from gateway.events.dispatch_config import DispatchConfig
from gateway.events.event import Event, event_id
from gateway.events.feed_group import GROUP, FeedGroup, Pointer
from gateway.store.keys import AccountKeys, ledger_feed
from pricing import parse_pricing
from tests.integration.conftest import (
    ADMIN_SHA,
    PRICING,
    Gateway,
    GatewayFactory,
    make_settings,
    remote,
)
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import GatewayProcess
from tests.support.waiting import eventually
from tests.support.webhook_receiver import Receiver, start_receiver

pytestmark = pytest.mark.redis_cluster_too

FLAT = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]}  # 0.002 each
# With 10.00 and these thresholds, each of the first three requests fires one balance_alert.
THRESHOLDS = ["9.999", "9.997", "9.995"]
FAST = DispatchConfig(backoff=0.2, backoff_max=2.0, timeout=3.0, claim_after=1.0)


async def spend(gw: Gateway, key: str, requests: int) -> None:
    for _ in range(requests):
        async with gw.http.post(gw.url + "/v1/chat/completions", json=FLAT,
                                headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
            assert r.status == 200, await r.text()


async def hooked_account(gw: Gateway, receiver: Receiver | None) -> tuple[str, str]:
    """An account with 10.00, three alert thresholds and (with ``receiver``) a webhook."""
    account, key = await gw.account(topup="10.00", alert_thresholds=THRESHOLDS)
    if receiver is not None:
        status, body = await gw.admin("PATCH", f"/admin/accounts/{account}",
                                      {"webhook_url": receiver.hook(account)})  # fmt: skip
        assert status == 200, body
        receiver.secrets[account] = body["webhook_secret"]
    return account, key


async def ledger_event_ids(redis: Any, account: str, count: int = 3) -> list[str]:
    """The account's event ids as every reader computes them, oldest first, once there are
    ``count`` (a request's settle may end just after its answer)."""
    ids: list[str] = []

    async def written() -> bool:
        ids[:] = [event_id(account, entry)
                  for entry, f in await redis.xrange(AccountKeys(account).ledger)
                  if f["t"] == "event"]  # fmt: skip
        return len(ids) >= count

    await eventually(written, 10, why=lambda: ids)
    return ids


async def listing(gw: Gateway, account: str, query: str = "") -> dict[str, Any]:
    status, body = await gw.admin("GET", f"/admin/accounts/{account}/events{query}")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def taken(receiver: Receiver, account: str, expected: list[str]) -> Callable[[], bool]:
    return lambda: receiver.ids(account) == expected


async def test_events_arrive_signed_in_order_once_each(
    make_gateway: GatewayFactory, aiohttp_server: Any, redis: Any
) -> None:
    gw = await make_gateway(webhooks=FAST)
    receiver = await start_receiver(aiohttp_server)
    accounts = [await hooked_account(gw, receiver) for _ in range(3)]
    await asyncio.gather(*(spend(gw, key, 3) for _, key in accounts))
    for account, _ in accounts:
        expected = await ledger_event_ids(redis, account)
        assert len(expected) == 3, expected
        await eventually(taken(receiver, account, expected))
    assert receiver.bad_signatures == 0
    assert len(receiver.arrivals) == 9  # once each: no failure, no repeat
    arrival = receiver.arrivals[0]
    event, entry = arrival.event, arrival.event["id"].rsplit("_", 1)[1]
    assert event["id"] == f"evt_{event['account']}_{entry}"
    assert event["created_at"] == utc_ms(int(entry.split("-")[0]), millis=True)
    assert event["event"] == "balance_alert" and event["data"]["threshold"] == "9.999"
    assert event["threshold"] == event["data"]["threshold"]  # the data, also at the top level
    assert event["balance"] == event["data"]["balance"] == "9.998"
    assert arrival.headers["User-Agent"] == "tollgate-webhooks"
    assert arrival.headers["Content-Type"] == "application/json"
    assert arrival.headers["Tollgate-Signature"].startswith("t=")
    thresholds = [e["threshold"] for e in receiver.taken if e["account"] == accounts[0][0]]
    assert thresholds == THRESHOLDS  # in the order they were written


async def test_a_receiver_failing_three_times_gets_the_event_after_backoff_and_in_order(
    make_gateway: GatewayFactory, aiohttp_server: Any, redis: Any
) -> None:
    gw = await make_gateway(webhooks=FAST)
    receiver = await start_receiver(aiohttp_server)
    receiver.fail = 3
    account, key = await hooked_account(gw, receiver)
    await spend(gw, key, 3)
    expected = await ledger_event_ids(redis, account)
    await eventually(taken(receiver, account, expected), 20)
    tries = [a.at for a in receiver.arrivals if a.event["id"] == expected[0]]
    assert len(tries) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
    assert gaps[0] >= 0.18 and gaps[1] >= 0.36 and gaps[2] >= 0.72, gaps  # 0.2 s, doubling
    others = [a.at for a in receiver.arrivals if a.event["id"] != expected[0]]
    assert min(others) >= tries[-1]  # the account's later events waited behind it
    rows = (await listing(gw, account))["data"]
    assert [(r["id"], r["state"], r["attempts"]) for r in rows] == [
        (expected[2], "delivered", 1), (expected[1], "delivered", 1),
        (expected[0], "delivered", 4)]  # fmt: skip


async def test_the_listing_shows_each_events_state(
    make_gateway: GatewayFactory, aiohttp_server: Any, redis: Any
) -> None:
    gw = await make_gateway(webhooks=DispatchConfig(backoff=0.1, backoff_max=0.2,
                                                    retry_for=2.0, timeout=2.0))  # fmt: skip
    receiver = await start_receiver(aiohttp_server)
    hooked, key = await hooked_account(gw, receiver)
    stuck, stuck_key = await hooked_account(gw, receiver)
    silent, silent_key = await hooked_account(gw, None)
    receiver.fail_if = lambda e: e["account"] == stuck or e["threshold"] == "9.999"
    await spend(gw, stuck_key, 1)
    stuck_ids = await ledger_event_ids(redis, stuck, 1)

    async def stuck_pending() -> bool:
        rows = (await listing(gw, stuck))["data"]
        return rows[0]["state"] == "pending" and rows[0]["attempts"] >= 1

    await eventually(stuck_pending)
    row = (await listing(gw, stuck))["data"][0]
    assert (row["id"], row["last_error"]) == (stuck_ids[0], "the receiver answered 500")
    await spend(gw, key, 3)
    await spend(gw, silent_key, 1)
    expected = await ledger_event_ids(redis, hooked)
    await eventually(taken(receiver, hooked, expected[1:]))  # the first one failed, then on
    rows = (await listing(gw, hooked))["data"]
    assert [r["id"] for r in rows] == expected[::-1]  # newest first
    assert [r["data"]["threshold"] for r in rows] == THRESHOLDS[::-1]
    failed = rows[-1]
    assert (failed["state"], failed["last_error"]) == ("failed", "the receiver answered 500")
    assert failed["attempts"] >= 3 and failed["event"] == "balance_alert"
    assert [(r["state"], r["attempts"], r["last_error"]) for r in rows[:2]] == [
        ("delivered", 1, None)] * 2
    await eventually(lambda: _states(gw, silent, ["no_webhook"]))
    await eventually(lambda: _states(gw, stuck, ["failed"]))

    first = await listing(gw, hooked, "?limit=1")
    second = await listing(gw, hooked, f"?limit=2&before={first['next']}")
    assert [r["id"] for r in first["data"] + second["data"]] == expected[::-1]
    rest = await listing(gw, hooked, f"?limit=2&before={second['next']}")
    assert rest == {"data": [], "next": None}
    for query in ("?limit=0", "?limit=x", "?before=x", "?before=1-2-3"):
        status, body = await gw.admin("GET", f"/admin/accounts/{hooked}/events{query}")
        assert status == 400 and body["error"]["code"] == "invalid_request", (query, body)
    status, _ = await gw.admin("GET", "/admin/accounts/no-such-account/events")
    assert status == 404
    assert await listing(gw, hooked, "?before=0-0") == {"data": [], "next": None}


async def _states(gw: Gateway, account: str, states: list[str]) -> bool:
    return [r["state"] for r in (await listing(gw, account))["data"]] == states


async def test_the_webhook_url_rules_and_its_secret(gateway: Gateway) -> None:
    made = {"name": "w", "webhook_url": "https://example.com/h"}
    status, made = await gateway.admin("POST", "/admin/accounts", made)
    assert status == 201, made
    secret = made["webhook_secret"]
    assert secret.startswith("whsec_") and len(secret) >= 40
    path = f"/admin/accounts/{made['id']}"
    assert (await gateway.admin("GET", path))[1]["webhook_secret"] == secret
    for url in ("https://example.org/x?y=1", "http://127.0.0.1:9/hook", "http://10.1.2.3/h",
                "http://localhost:8000/h", "http://[::1]:80/h", None):
        status, body = await gateway.admin("PATCH", path, {"webhook_url": url})
        assert status == 200 and body["webhook_url"] == url, body
        assert body["webhook_secret"] == secret  # kept across changes, and once cleared
    status, plain = await gateway.admin("POST", "/admin/accounts", {"name": "p"})
    assert (plain["webhook_url"], plain["webhook_secret"]) == (None, None)
    status, now = await gateway.admin("PATCH", f"/admin/accounts/{plain['id']}",
                                      {"webhook_url": "https://hooks.example/p"})  # fmt: skip
    assert now["webhook_secret"].startswith("whsec_") and now["webhook_secret"] != secret
    for bad in ("http://example.com/h", "ftp://example.com/", "https://user:pw@example.com/",
                "https://example.com/#part", "https:///nohost", "", "https://a b.example/",
                "https://example.com/" + "x" * 2048, 5, ["https://example.com"]):
        status, body = await gateway.admin("PATCH", path, {"webhook_url": bad})
        assert status == 400 and body["error"]["param"] == "webhook_url", (bad, body)


async def two_processes(spawn: Callable[..., Awaitable[GatewayProcess]],
                        **config: Any) -> list[GatewayProcess]:  # fmt: skip
    return [await spawn(**config), await spawn(**config)]


async def test_two_processes_share_the_work_and_every_event_arrives_once(
    spawn: Callable[..., Awaitable[GatewayProcess]], http: aiohttp.ClientSession,
    aiohttp_server: Any, redis: Any,
) -> None:  # fmt: skip
    procs = await two_processes(spawn, webhook_backoff=0.2, dispatch_claim_after=2)
    gws = [remote(p, http) for p in procs]
    receiver = await start_receiver(aiohttp_server)
    accounts = [await hooked_account(gws[i % 2], receiver) for i in range(4)]
    for n in range(3):  # over several rounds of the relay: each batch goes to one process
        await asyncio.gather(*(spend(gws[(i + n) % 2], key, 1)
                               for i, (_, key) in enumerate(accounts)))  # fmt: skip
        await asyncio.sleep(0.3)

    async def both_took_pointers() -> bool:  # whichever reads first takes a batch
        await spend(gws[0], accounts[0][1], 1)  # past the thresholds: charges, no events
        return len(await redis.xinfo_consumers(ledger_feed(), GROUP)) == 2

    await eventually(both_took_pointers)
    total = 0
    for account, _ in accounts:
        expected = await ledger_event_ids(redis, account)
        total += len(expected)
        await eventually(taken(receiver, account, expected), 20)
    assert total == 12 and len(receiver.arrivals) == total  # each exactly once
    assert receiver.bad_signatures == 0


async def test_a_dispatcher_killed_mid_delivery_loses_no_event(
    spawn: Callable[..., Awaitable[GatewayProcess]], http: aiohttp.ClientSession,
    aiohttp_server: Any, redis: Any,
) -> None:  # fmt: skip
    procs = await two_processes(spawn, webhook_backoff=0.2, dispatch_claim_after=1,
                                webhook_timeout=3)  # fmt: skip
    receiver = await start_receiver(aiohttp_server)
    receiver.hold = asyncio.Event()
    account, key = await hooked_account(remote(procs[0], http), receiver)
    await spend(remote(procs[0], http), key, 1)
    await asyncio.wait_for(receiver.holding.wait(), 10)  # a process is delivering it now
    held = receiver.arrivals[0].event["id"]
    doomed = await _delivering(redis, procs, held.rsplit("_", 1)[1])
    doomed.kill()
    receiver.hold.set()
    survivor_proc = next(p for p in procs if p is not doomed)
    survivor = remote(survivor_proc, http)
    await spend(survivor, key, 2)  # more events of the account: they must wait behind it
    expected = await ledger_event_ids(redis, account)
    assert expected[0] == held
    await eventually(taken(receiver, account, expected), 30, why=lambda: (
        expected, [(round(a.at, 2), a.event["id"]) for a in receiver.arrivals],
        doomed.log.read_text()[-2000:], survivor_proc.log.read_text()[-3000:]))
    assert [a.event["id"] for a in receiver.arrivals].count(held) == 2  # held, then again


async def _delivering(redis: Any, procs: list[GatewayProcess], entry: str) -> GatewayProcess:
    """The process whose dispatcher holds the feed pointer of the ledger entry ``entry``
    (consumers are named ``<host>-<pid>-<random>``)."""
    for pending in await redis.xpending_range(ledger_feed(), GROUP, "-", "+", 100):
        ((_, pointer),) = await redis.xrange(ledger_feed(), pending["message_id"],
                                             pending["message_id"])  # fmt: skip
        if pointer["e"] == entry:
            pid = int(pending["consumer"].rsplit("-", 2)[1])
            return next(p for p in procs if p.proc.pid == pid)
    raise AssertionError("no process holds the event's pointer")


async def test_handlers_see_each_event_before_its_webhook_and_a_failing_one_retries(
    aiohttp_server: Any, redis: Any, upstream: FakeUpstream, tmp_path: Path,
    counter: TokenCounter,
) -> None:  # fmt: skip
    receiver = await start_receiver(aiohttp_server)
    receiver.fail = 1  # the first webhook fails once: the handlers are not run again for it
    calls: list[tuple[float, str, str, str]] = []
    refusals: dict[str, int] = {}  # account -> how many more calls to refuse

    async def handler(account_id: str, event: Event) -> None:
        calls.append((time.monotonic(), account_id, event.id, event.name))
        if refusals.get(account_id):
            refusals[account_id] -= 1
            raise RuntimeError("not yet")

    app = create_app(make_settings(upstream.base_url, tmp_path, webhooks=FAST), redis=redis,
                     admin_token_sha256=ADMIN_SHA, pricing=parse_pricing(PRICING, source="t"),
                     counter=counter, event_handlers=[handler])  # fmt: skip
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        gw = Gateway(url=f"http://127.0.0.1:{server.port}", http=session,
                     registry=CollectorRegistry(), app=app)  # fmt: skip
        hooked, key = await hooked_account(gw, receiver)
        silent, silent_key = await hooked_account(gw, None)
        refusals[hooked] = 2
        await spend(gw, key, 1)
        await spend(gw, silent_key, 1)
        expected = await ledger_event_ids(redis, hooked, 1)
        await eventually(taken(receiver, hooked, expected))
        await eventually(lambda: _states(gw, silent, ["no_webhook"]))
        rows = (await listing(gw, hooked))["data"]
    tries = [at for at, account, eid, _ in calls if eid == expected[0]]
    assert len(tries) == 3  # refused twice, then ran; the webhook's retry did not run it again
    assert receiver.arrivals[0].at > tries[-1]  # the handler first
    assert [(r["state"], r["attempts"]) for r in rows] == [("delivered", 2)]
    assert {(account, name) for _, account, _, name in calls} == {
        (hooked, "balance_alert"), (silent, "balance_alert")}


async def test_gone_consumers_with_nothing_pending_are_forgotten(
    redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    live, gone = FeedGroup(redis, "live"), FeedGroup(redis, "gone")
    await live.ensure()
    feed_id = await redis.xadd(ledger_feed(), {"a": "acct", "e": "1-0"})
    assert [p.feed_id for p in await gone.read_new(10)] == [feed_id]
    assert await live.read_new(10) == []
    assert await live.claim_idle(0, 10) == [Pointer(feed_id, "acct", "1-0")]  # gone's, now live's
    monkeypatch.setattr(feed_group, "IDLE_CONSUMER_MS", -1)
    assert await live.forget_idle_consumers() == 1
    assert [c["name"] for c in await redis.xinfo_consumers(ledger_feed(), GROUP)] == ["live"]
    assert await live.touch([feed_id]) == {feed_id}
    await live.ack([feed_id])
    assert await live.touch([feed_id]) == set()  # acknowledged: no longer pending
