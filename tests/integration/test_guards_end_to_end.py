"""Guards end to end (issue 19, docs/guards.md): two ``tollgate serve`` processes on one Redis,
a real webhook receiver on loopback, 100 concurrent requests crossing an alert threshold and
an auto top-up threshold together: the receiver gets exactly one ``balance_alert`` and exactly
one ``wallet_balance_low``, signed (README's recipe), once each, in the account's ledger order;
the top-up with the event's order id clears the request and no second one is asked for. The
redis fixture checks the ledger identity after the test."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from gateway.billing.ledger import event_id
from gateway.store.keys import AccountKeys
from tests.integration.conftest import Gateway, remote
from tests.support.processes import GatewayProcess
from tests.support.waiting import eventually
from tests.support.webhook_receiver import Receiver, start_receiver

pytestmark = pytest.mark.redis_cluster_too

FLAT = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]}  # 0.002 each
GRACE = 2.0  # seconds in which no further event may arrive


async def call(gw: Gateway, key: str) -> int:
    async with gw.http.post(gw.url + "/v1/chat/completions", json=FLAT,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        await r.read()
        return r.status


async def ledger_events(redis: Any, account: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The account's events as the ledger holds them, oldest first: (id, name, data)."""
    return [(event_id(account, entry), f["e"], json.loads(f["d"]))
            for entry, f in await redis.xrange(AccountKeys(account).ledger)
            if f["t"] == "event"]  # fmt: skip


async def test_one_alert_and_one_auto_top_up_for_100_concurrent_crossings_on_two_processes(
    spawn: Callable[..., Awaitable[GatewayProcess]], http: aiohttp.ClientSession,
    aiohttp_server: Any, redis: Any,
) -> None:  # fmt: skip
    procs = [await spawn(webhook_backoff=0.2, webhook_timeout=3, dispatch_claim_after=2)
             for _ in range(2)]  # fmt: skip
    gws = [remote(p, http) for p in procs]
    receiver: Receiver = await start_receiver(aiohttp_server)

    # 5.00 in; the auto top-up asks at 4.95 (the 26th settle), the alert fires at 4.90 (51st).
    account, key = await gws[0].account(
        topup="5.00", alert_threshold="4.90",
        auto_topup={"threshold": "4.95", "amount": "10.00"},
    )  # fmt: skip
    status, body = await gws[0].admin("PATCH", f"/admin/accounts/{account}",
                                      {"webhook_url": receiver.hook(account)})  # fmt: skip
    assert status == 200, body
    assert body["webhook_url"] == receiver.hook(account)
    assert body["alert_thresholds"] == ["4.90"]
    assert body["auto_topup"]["threshold"] == "4.95" and body["auto_topup"]["amount"] == "10.00"
    receiver.secrets[account] = body["webhook_secret"]

    statuses = await asyncio.gather(*(call(gws[i % 2], key) for i in range(100)))
    assert statuses == [200] * 100

    written: list[tuple[str, str, dict[str, Any]]] = []

    async def two_written() -> bool:  # a settle may end just after its answer
        written[:] = await ledger_events(redis, account)
        return len(written) >= 2

    await eventually(two_written, 20, why=lambda: written)
    await eventually(lambda: receiver.ids(account) == [i for i, _, _ in written],
                     why=lambda: (written, [a.event["id"] for a in receiver.arrivals],
                                  [p.log.read_text()[-2000:] for p in procs]))  # fmt: skip
    wallet = await gws[1].wallet(account)
    assert wallet["cash"] == "4.80", wallet  # 100 x 0.002, whichever process answered
    written[:] = await ledger_events(redis, account)
    # In the ledger's order: the higher threshold is crossed first.
    assert [name for _, name, _ in written] == ["wallet_balance_low", "balance_alert"], written
    low, alert = (e for e in receiver.taken if e["account"] == account)
    assert low["event"] == "wallet_balance_low"
    assert (low["data"]["threshold"], low["data"]["action"], low["data"]["amount"]) == (
        "4.95",
        "auto_top_up",
        "10.00",
    )
    assert low["data"]["balance"] == "4.948"  # the settle that crossed: 26 x 0.002 taken
    order_id = low["data"]["order_id"]
    assert order_id and low["order_id"] == order_id  # also at the top level
    assert alert["event"] == "balance_alert"
    assert (alert["data"]["threshold"], alert["data"]["balance"]) == ("4.90", "4.898")
    assert alert["threshold"] == "4.90"
    assert receiver.bad_signatures == 0  # every one checked with README's recipe
    assert len(receiver.arrivals) == 2  # no failure, no repeat
    assert not [i for i, n in Counter(a.event["id"] for a in receiver.arrivals).items() if n > 1]
    assert all(a.headers["Tollgate-Signature"].startswith("t=") for a in receiver.arrivals)

    # The operator's system pays: the top-up with the event's order id clears the request.
    status, body = await gws[1].admin("POST", f"/admin/accounts/{account}/topups",
                                      {"amount": "10.00", "order_id": order_id})  # fmt: skip
    assert status == 201, body
    assert await redis.hget(AccountKeys(account).wallet, "auto_pending") is None
    assert await call(gws[0], key) == 200  # 14.798: above both thresholds
    assert await call(gws[1], key) == 200
    await asyncio.sleep(GRACE)
    names = [e["event"] for e in receiver.taken if e["account"] == account]
    assert names == ["wallet_balance_low", "balance_alert"], receiver.taken
    assert len(receiver.arrivals) == 2
    assert [name for _, name, _ in await ledger_events(redis, account)] == [
        "wallet_balance_low",
        "balance_alert",
    ]
    assert (await gws[0].wallet(account))["cash"] == "14.796"

    rows: list[dict[str, Any]] = []

    async def both_delivered() -> bool:
        status, body = await gws[1].admin("GET", f"/admin/accounts/{account}/events")
        assert status == 200, body
        rows[:] = body["data"]
        return [r["state"] for r in rows] == ["delivered", "delivered"]

    await eventually(both_delivered, 10, why=lambda: rows)
    assert [(r["id"], r["event"], r["attempts"]) for r in rows] == [  # newest first
        (written[1][0], "balance_alert", 1),
        (written[0][0], "wallet_balance_low", 1),
    ]
