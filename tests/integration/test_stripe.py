"""Payments through Stripe (issue 19, gateway.payments): the official ``stripe`` library talks to
a fake of Stripe's API on port 0 (tests/support/fake_stripe.py), and Stripe's events come in
signed as Stripe signs them. Nothing leaves this machine: every call the library makes is in
the fake's record. The identity per kind is the redis fixture's check, after every test."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe

from gateway.app import PAYMENTS
from gateway.payments.config import PaymentsConfig, StripeConfig
from gateway.payments.payment_provider import Event
from gateway.store.keys import AccountKeys
from tests.integration.conftest import Gateway, GatewayFactory
from tests.support.fake_stripe import FakeStripe, sign
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.redis_cluster_too

SECRET_KEY = "sk_test_tollgate_fake_0123456789"
WEBHOOK_SECRET = "whsec_tollgate_fake_0123456789"
URLS = {"success_url": "https://shop.example/paid", "cancel_url": "https://shop.example/cart"}
FLAT = {"model": "gpt-flat", "messages": [{"role": "user", "content": "hi"}]}  # 0.002 each


@pytest.fixture
async def fake_stripe(aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch) -> FakeStripe:
    # The library would write a telemetry id under ~/.config/stripe on its first request.
    monkeypatch.setattr(stripe, "enable_telemetry", False)
    fake = FakeStripe(SECRET_KEY, WEBHOOK_SECRET)
    server = await aiohttp_server(fake.app)
    fake.base_url = f"http://127.0.0.1:{server.port}"
    return fake


@pytest.fixture
async def gateway(make_gateway: GatewayFactory, fake_stripe: FakeStripe) -> Gateway:
    config = PaymentsConfig(StripeConfig(SECRET_KEY, WEBHOOK_SECRET, fake_stripe.base_url))
    return await make_gateway(payments=config)


async def webhook(gw: Gateway, payload: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with gw.http.post(gw.url + "/webhooks/stripe", data=payload, headers=headers) as r:
        return r.status, await r.json()


async def checkout(gw: Gateway, account: str, amount: str = "25.00") -> tuple[int, Any]:
    return await gw.admin("POST", f"/admin/accounts/{account}/checkout", {"amount": amount,
                                                                         **URLS})  # fmt: skip


async def paid_session(gw: Gateway, fake: FakeStripe, account: str, amount: str) -> str:
    """A Checkout Session made through the gateway, paid, its event delivered: its id."""
    status, made = await checkout(gw, account, amount)
    assert status == 201, made
    payload = fake.complete(made["id"])
    status, body = await webhook(gw, payload, fake.signed(payload))
    assert (status, body["outcome"]) == (200, "credited"), body
    return str(made["id"])


async def transactions(gw: Gateway, account: str) -> list[dict[str, Any]]:
    status, body = await gw.admin("GET", f"/admin/accounts/{account}/transactions")
    assert status == 200, body
    return body["data"]  # type: ignore[no-any-return]


async def events(redis: Any, account: str, name: str) -> list[tuple[str, dict[str, Any]]]:
    """(event id, data) of the account's events of that name, oldest first."""
    return [(f"evt_{account}_{entry}", json.loads(f["d"]))
            for entry, f in await redis.xrange(AccountKeys(account).ledger)
            if f["t"] == "event" and f["e"] == name]  # fmt: skip


async def test_a_checkout_is_credited_once_per_event_and_once_per_payment(
    gateway: Gateway, fake_stripe: FakeStripe
) -> None:
    account, _ = await gateway.account(topup=None)
    status, made = await checkout(gateway, account)
    assert status == 201 and set(made) == {"id", "url"}, made
    assert made["url"].startswith(fake_stripe.base_url), made  # the fake's, nothing else
    [sent] = fake_stripe.posted("/v1/checkout/sessions")
    assert {k: sent.form[k] for k in ("mode", "client_reference_id", "metadata[account_id]",
                                      "line_items[0][price_data][unit_amount]",
                                      "line_items[0][price_data][currency]")} == {
        "mode": "payment", "client_reference_id": account, "metadata[account_id]": account,
        "line_items[0][price_data][unit_amount]": "2500",
        "line_items[0][price_data][currency]": "usd"}  # fmt: skip

    payload = fake_stripe.complete(made["id"], event_id="evt_first")
    headers = fake_stripe.signed(payload)
    assert await webhook(gateway, payload, headers) == (200, {"received": True,
                                                              "outcome": "credited"})
    assert (await gateway.wallet(account))["cash"] == "25.00"
    [txn] = await transactions(gateway, account)
    assert (txn["type"], txn["amount"], txn["order_id"]) == ("topup", "25.00", made["id"])
    assert made["id"] in txn["note"]

    # The same event again, and a second event for the same payment: nothing more.
    assert (await webhook(gateway, payload, headers))[1]["outcome"] == "replayed"
    again = fake_stripe.complete(made["id"], event_id="evt_second")
    assert (await webhook(gateway, again, fake_stripe.signed(again)))[1]["outcome"] == "replayed"
    assert (await gateway.wallet(account))["cash"] == "25.00"
    assert len(await transactions(gateway, account)) == 1
    assert all(r.path.startswith("/v1/") for r in fake_stripe.requests)


async def test_a_forged_stale_or_unsigned_event_credits_nothing(
    gateway: Gateway, fake_stripe: FakeStripe
) -> None:
    account, _ = await gateway.account(topup=None)
    _, made = await checkout(gateway, account)
    payload = fake_stripe.complete(made["id"])
    forged = {"Stripe-Signature": sign(payload, "whsec_someone_else")}
    stale = fake_stripe.signed(payload, timestamp=int(time.time()) - 301)
    tampered = payload.replace(b'"amount_total":2500', b'"amount_total":250000')
    assert tampered != payload
    for body, headers in ((payload, forged), (payload, stale), (payload, {}),
                          (tampered, fake_stripe.signed(payload)),
                          (b"not json", fake_stripe.signed(b"not json"))):
        status, error = await webhook(gateway, body, headers)
        assert status == 400 and error["error"]["code"] == "invalid_request", error
    assert await transactions(gateway, account) == []
    # None of them used up the event's id: the real delivery still credits.
    assert (await webhook(gateway, payload, fake_stripe.signed(payload)))[1]["outcome"] == (
        "credited")


async def test_another_currency_is_refused_and_an_unpaid_session_waits(
    gateway: Gateway, fake_stripe: FakeStripe
) -> None:
    account, _ = await gateway.account(topup=None)
    _, made = await checkout(gateway, account)
    session = fake_stripe.sessions[made["id"]]
    unpaid = fake_stripe.event("checkout.session.completed", session)
    status, body = await webhook(gateway, unpaid, fake_stripe.signed(unpaid))
    assert (status, body["outcome"]) == (200, "ignored: not paid yet")
    euros = fake_stripe.event("checkout.session.completed",
                              {**session, "currency": "eur", "payment_status": "paid"})
    status, error = await webhook(gateway, euros, fake_stripe.signed(euros))
    assert status == 400 and "EUR" in error["error"]["message"], error
    assert "USD" in error["error"]["message"] and error["error"]["param"] == "currency"
    other = fake_stripe.event("customer.created", {"id": "cus_1", "object": "customer"})
    assert (await webhook(gateway, other, fake_stripe.signed(other)))[1]["outcome"] == "ignored"
    assert await transactions(gateway, account) == []


async def test_a_checkout_keeps_to_the_plan_and_a_paid_one_is_credited_anyway(
    gateway: Gateway, fake_stripe: FakeStripe
) -> None:
    free, _ = await gateway.account(topup=None, plan="free")
    status, error = await checkout(gateway, free)
    assert status == 403 and error["error"]["code"] == "plan_cannot_top_up", error
    pro, _ = await gateway.account(topup=None, plan="pro")
    for amount in ("5.00", "10.001", "-1"):
        status, error = await checkout(gateway, pro, amount)
        assert status == 400 and error["error"]["param"] == "amount", (amount, error)
    status, error = await gateway.admin("POST", f"/admin/accounts/{pro}/checkout",
                                        {"amount": "10.00", **URLS, "cancel_url": "ftp://x"})
    assert status == 400 and error["error"]["param"] == "cancel_url", error
    assert fake_stripe.posted("/v1/checkout/sessions") == []  # none of those reached Stripe
    status, made = await checkout(gateway, pro, "10.00")
    assert status == 201, made
    # Paid after the plan stopped allowing top-ups: the money was taken, so it is credited.
    status, _ = await gateway.admin("PATCH", f"/admin/accounts/{pro}", {"plan": "free"})
    assert status == 200
    payload = fake_stripe.complete(made["id"])
    assert (await webhook(gateway, payload, fake_stripe.signed(payload)))[1]["outcome"] == (
        "credited")
    assert (await gateway.wallet(pro))["cash"] == "10.00"


async def test_an_owner_key_checks_out_for_its_own_account(
    gateway: Gateway, fake_stripe: FakeStripe
) -> None:
    account, member = await gateway.account(topup=None)
    status, owner = await gateway.admin("POST", f"/admin/accounts/{account}/keys",
                                        {"role": "owner"})  # fmt: skip
    assert status == 201, owner
    for key, expected in ((member, 403), (owner["key"], 201)):
        async with gateway.http.post(gateway.url + "/v1/account/checkout",
                                     json={"amount": "12.34", **URLS},
                                     headers={"Authorization": f"Bearer {key}"}) as r:
            assert r.status == expected, await r.text()
    [sent] = fake_stripe.posted("/v1/checkout/sessions")
    assert sent.form["client_reference_id"] == account
    assert sent.form["line_items[0][price_data][unit_amount]"] == "1234"


async def test_without_stripe_checkout_is_refused_and_the_webhook_is_not_there(
    make_gateway: GatewayFactory,
) -> None:
    plain = await make_gateway()
    account, _ = await plain.account(topup=None)
    status, error = await checkout(plain, account)
    assert status == 409 and error["error"]["code"] == "payments_not_configured", error
    assert "not configured" in error["error"]["message"]
    status, error = await webhook(plain, b"{}", {"Stripe-Signature": sign(b"{}", "whsec_x")})
    assert status == 404, error


async def low_balance(gw: Gateway, redis: Any, *, saved_card: bool = True) -> tuple[str, Event]:
    """An account that one request takes below its auto top-up threshold: its
    ``wallet_balance_low`` event, as the dispatcher hands it on."""
    card = {"stripe_customer_id": "cus_T0llgate", "stripe_payment_method": "pm_card1"}
    account, key = await gw.account(topup="5.00", auto_topup={"threshold": "5.00",
                                                              "amount": "10.00"},
                                    **(card if saved_card else {}))  # fmt: skip
    async with gw.http.post(gw.url + "/v1/chat/completions", json=FLAT,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        assert r.status == 200, await r.text()
    await gw.wallet(account)  # waits for the request's settle, which emitted the event
    [(event_id, data)] = await events(redis, account, "wallet_balance_low")
    return account, Event(event_id, "wallet_balance_low", data)


async def test_an_auto_top_up_is_charged_off_session_and_credited_once(
    gateway: Gateway, fake_stripe: FakeStripe, upstream: FakeUpstream, redis: Any
) -> None:
    account, event = await low_balance(gateway, redis)
    status, shown = await gateway.admin("GET", f"/admin/accounts/{account}")
    assert status == 200 and (shown["stripe_customer_id"], shown["stripe_payment_method"]) == (
        "cus_T0llgate", "pm_card1")
    order = event.data["order_id"]
    await gateway.app[PAYMENTS].auto_topups.handle(account, event)
    [charge] = fake_stripe.posted("/v1/payment_intents")
    assert charge.idempotency_key == f"tollgate:{account}:charge:{order}"
    assert {k: charge.form[k] for k in ("amount", "currency", "customer", "payment_method",
                                        "off_session", "confirm", "metadata[account_id]",
                                        "metadata[order_id]")} == {
        "amount": "1000", "currency": "usd", "customer": "cus_T0llgate",
        "payment_method": "pm_card1", "off_session": "true", "confirm": "true",
        "metadata[account_id]": account, "metadata[order_id]": order}  # fmt: skip
    assert (await gateway.wallet(account))["cash"] == "14.998"
    assert await redis.hget(AccountKeys(account).wallet, "auto_pending") is None

    # Delivered again, and its payment's own event: nothing more is charged or credited.
    await gateway.app[PAYMENTS].auto_topups.handle(account, event)
    assert len(fake_stripe.posted("/v1/payment_intents")) == 1
    [intent_id] = fake_stripe.intents
    payload = fake_stripe.intent_event(intent_id, "payment_intent.succeeded")
    assert (await webhook(gateway, payload, fake_stripe.signed(payload)))[1]["outcome"] == (
        "replayed")
    assert (await gateway.wallet(account))["cash"] == "14.998"


async def test_a_charge_still_processing_is_credited_by_its_event(
    gateway: Gateway, fake_stripe: FakeStripe, upstream: FakeUpstream, redis: Any
) -> None:
    fake_stripe.intent_status = "processing"
    account, event = await low_balance(gateway, redis)
    await gateway.app[PAYMENTS].auto_topups.handle(account, event)
    assert (await gateway.wallet(account))["cash"] == "4.998"
    assert await redis.hget(AccountKeys(account).wallet, "auto_pending") is not None
    [intent_id] = fake_stripe.intents
    payload = fake_stripe.intent_event(intent_id, "payment_intent.succeeded")
    assert (await webhook(gateway, payload, fake_stripe.signed(payload)))[1]["outcome"] == (
        "credited")
    assert (await gateway.wallet(account))["cash"] == "14.998"
    assert await redis.hget(AccountKeys(account).wallet, "auto_pending") is None
    [topup] = [t for t in await transactions(gateway, account)
               if t["order_id"] == event.data["order_id"]]  # fmt: skip
    assert intent_id in topup["note"]


async def test_a_declined_card_releases_the_request_with_a_back_off(
    gateway: Gateway, fake_stripe: FakeStripe, upstream: FakeUpstream, redis: Any
) -> None:
    fake_stripe.decline = "insufficient_funds"
    account, event = await low_balance(gateway, redis)
    before_ms = int(time.time() * 1000)
    await gateway.app[PAYMENTS].auto_topups.handle(account, event)
    [(_, failed)] = await events(redis, account, "auto_topup_failed")
    assert failed["order_id"] == event.data["order_id"]
    assert "declined" in failed["reason"] and "card_declined" in failed["reason"], failed
    wallet = await redis.hgetall(AccountKeys(account).wallet)
    assert "auto_pending" not in wallet and wallet["auto_backoff"] == "7200000"
    retry_ms = int(wallet["auto_retry_at"])
    assert before_ms + 3_600_000 - 5_000 <= retry_ms <= before_ms + 3_600_000 + 60_000
    assert failed["retry_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                               time.gmtime(retry_ms // 1000))  # fmt: skip
    assert (await gateway.wallet(account))["cash"] == "4.998"
    # Stripe's own event of the failure, later: the request is released already.
    [intent_id] = fake_stripe.intents
    payload = fake_stripe.intent_event(intent_id, "payment_intent.payment_failed")
    assert (await webhook(gateway, payload, fake_stripe.signed(payload)))[1]["outcome"] == (
        "ignored: not pending")
    assert len(await events(redis, account, "auto_topup_failed")) == 1


async def test_the_back_off_doubles_up_to_a_day_and_a_stale_failure_changes_nothing(
    gateway: Gateway, redis: Any
) -> None:
    account, _ = await gateway.account(topup=None)
    wallet, auto = AccountKeys(account).wallet, gateway.app[PAYMENTS].auto_topups
    assert await auto.failed(account, "auto_1", "no such order") is False
    await redis.hset(wallet, mapping={"auto_pending": "auto_2|9999999999999",
                                      "auto_backoff": "57600000"})  # 16 h
    assert await auto.failed(account, "auto_1", "another order's") is False
    assert await auto.failed(account, "auto_2", "declined") is True
    assert await redis.hget(wallet, "auto_backoff") == "86400000"  # 32 h, capped at 24 h
    await redis.hset(wallet, "auto_pending", "auto_3|9999999999999")
    assert await auto.failed(account, "auto_3", "declined") is True
    assert await redis.hget(wallet, "auto_backoff") == "86400000"
    assert [d["order_id"] for _, d in await events(redis, account, "auto_topup_failed")] == [
        "auto_2", "auto_3"]


async def test_no_saved_card_no_charge(
    gateway: Gateway, fake_stripe: FakeStripe, upstream: FakeUpstream, redis: Any
) -> None:
    account, event = await low_balance(gateway, redis, saved_card=False)
    await gateway.app[PAYMENTS].auto_topups.handle(account, event)
    assert fake_stripe.requests == []  # the webhook has the event; the operator tops up
    assert await redis.hget(AccountKeys(account).wallet, "auto_pending") is not None


async def test_a_refund_of_a_stripe_top_up_goes_through_stripe_first(
    gateway: Gateway, fake_stripe: FakeStripe, redis: Any
) -> None:
    account, _ = await gateway.account(topup=None)
    session = await paid_session(gateway, fake_stripe, account, "25.00")
    path = f"/admin/accounts/{account}/refunds"
    status, txn = await gateway.admin("POST", path, {"amount": "10.00", "order_id": "r1",
                                                     "topup": session, "note": "asked"})
    assert status == 201, txn
    [refund] = fake_stripe.posted("/v1/refunds")
    intent = fake_stripe.sessions[session]["payment_intent"]
    assert (refund.form["payment_intent"], refund.form["amount"]) == (intent, "1000")
    assert refund.idempotency_key == f"tollgate:{account}:refund:r1"
    [refund_id] = fake_stripe.refunds
    assert txn["note"] == f"Stripe refund {refund_id}: asked"
    notes = [f["n"] for _, f in await redis.xrange(AccountKeys(account).ledger)
             if f["t"] == "refund"]  # fmt: skip
    assert notes == [txn["note"]]

    status, again = await gateway.admin("POST", path, {"amount": "10.00", "order_id": "r1",
                                                       "topup": session})  # fmt: skip
    assert status == 200 and again["id"] == txn["id"]
    for body in ({"amount": "1.001", "order_id": "r2", "topup": session},
                 {"amount": "15.01", "order_id": "r3", "topup": session}):
        status, error = await gateway.admin("POST", path, body)
        assert status == 400 and error["error"]["param"] == "amount", (body, error)
    assert len(fake_stripe.posted("/v1/refunds")) == 1  # none of those reached Stripe

    fake_stripe.refuse_refunds = "This charge is disputed."
    status, error = await gateway.admin("POST", path, {"amount": "1.00", "order_id": "r4",
                                                       "topup": session})  # fmt: skip
    assert status == 400 and error["error"]["code"] == "payment_refused", error
    assert "disputed" in error["error"]["message"]
    assert (await gateway.wallet(account))["cash"] == "15.00"
    # A refund that names no top-up is only recorded, as before.
    status, _ = await gateway.admin("POST", path, {"amount": "1.00", "order_id": "r5"})
    assert status == 201 and len(fake_stripe.posted("/v1/refunds")) == 2
    assert (await gateway.wallet(account))["cash"] == "14.00"


async def test_saved_payment_fields_are_checked(gateway: Gateway) -> None:
    account, _ = await gateway.account(topup=None)
    for bad in ({"stripe_customer_id": "pm_1"}, {"stripe_payment_method": 5},
                {"stripe_customer_id": "cus_1\n"}):
        status, error = await gateway.admin("PATCH", f"/admin/accounts/{account}", bad)
        assert status == 400 and error["error"]["param"] == next(iter(bad)), error
    status, body = await gateway.admin("PATCH", f"/admin/accounts/{account}",
                                       {"stripe_customer_id": "cus_1",
                                        "stripe_payment_method": "pm_1"})  # fmt: skip
    assert status == 200 and body["stripe_customer_id"] == "cus_1", body
    status, body = await gateway.admin("PATCH", f"/admin/accounts/{account}",
                                       {"stripe_customer_id": None})
    assert status == 200 and body["stripe_customer_id"] is None
    assert body["stripe_payment_method"] == "pm_1"
