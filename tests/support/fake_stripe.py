"""A fake of Stripe's API on port 0: only what Tollgate calls, in Stripe's JSON shapes (close
enough for the ``stripe`` library's objects), and Stripe's webhook signatures.

    POST /v1/checkout/sessions   a Checkout Session (``complete()`` pays it: its event)
    POST /v1/payment_intents     an off-session charge: ``decline`` makes it a 402 card_error,
                                 ``intent_status`` sets how it ends ("succeeded", "processing")
    POST /v1/refunds             a refund of a PaymentIntent; ``refuse_refunds`` refuses them
    GET  /v1/checkout/sessions/{id}, /v1/payment_intents/{id}   what was made

Each request is recorded (``requests``): its form fields as the library encodes them
(``metadata[order_id]``, ``line_items[0][price_data][unit_amount]``), its
``Idempotency-Key``; a key seen before answers what it answered the first time, as Stripe does.
:func:`sign` makes a ``Stripe-Signature`` exactly as Stripe does.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

API_VERSION = "2026-11-17.clover"


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """``Stripe-Signature`` of ``payload``: ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<payload>">``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def new_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


@dataclass
class Recorded:
    method: str
    path: str
    form: dict[str, str]
    idempotency_key: str | None
    replayed: bool = False


def _error(status: int, kind: str, code: str, message: str, **extra: Any) -> web.Response:
    body = {"error": {"type": kind, "code": code, "message": message, **extra}}
    return web.json_response(body, status=status)


class FakeStripe:
    def __init__(self, api_key: str, webhook_secret: str) -> None:
        self.api_key, self.webhook_secret = api_key, webhook_secret
        self.requests: list[Recorded] = []
        self.decline: str | None = None  # a decline code: charges fail with a card_error
        self.intent_status = "succeeded"
        self.refuse_refunds: str | None = None  # the refusal's message
        self.sessions: dict[str, dict[str, Any]] = {}
        self.intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self._answers: dict[str, tuple[int, bytes]] = {}  # by idempotency key
        self.base_url = ""  # set once serving
        self.app = web.Application()
        self.app.router.add_post("/v1/checkout/sessions", self._create_session)
        self.app.router.add_post("/v1/payment_intents", self._create_intent)
        self.app.router.add_post("/v1/refunds", self._create_refund)
        self.app.router.add_get("/v1/checkout/sessions/{id}", self._get(self.sessions))
        self.app.router.add_get("/v1/payment_intents/{id}", self._get(self.intents))

    def posted(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    # -- events, signed as Stripe signs them ---------------------------------------------------

    def event(self, kind: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
        return orjson.dumps({
            "id": event_id or new_id("evt"), "object": "event", "api_version": API_VERSION,
            "created": int(time.time()), "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "type": kind,
            "data": {"object": obj},
        })  # fmt: skip

    def signed(self, payload: bytes, timestamp: int | None = None) -> dict[str, str]:
        return {"Stripe-Signature": sign(payload, self.webhook_secret, timestamp),
                "Content-Type": "application/json"}  # fmt: skip

    def complete(self, session_id: str, event_id: str | None = None) -> bytes:
        """The customer paid: the session's ``checkout.session.completed`` event."""
        session = self.sessions[session_id]
        if session["payment_intent"] is None:
            intent = self._intent({"amount": str(session["amount_total"]), "currency": "usd",
                                   "metadata[account_id]": session["client_reference_id"]},
                                  "succeeded")  # fmt: skip
            session.update(payment_intent=intent["id"], payment_status="paid", status="complete")
        return self.event("checkout.session.completed", session, event_id)

    def intent_event(self, intent_id: str, kind: str) -> bytes:
        """``payment_intent.succeeded`` or ``payment_intent.payment_failed`` of a charge."""
        intent = self.intents[intent_id]
        if kind == "payment_intent.succeeded":
            intent.update(status="succeeded", amount_received=intent["amount"])
        else:
            intent.update(status="requires_payment_method", last_payment_error={
                "type": "card_error", "code": "card_declined", "decline_code": "expired_card",
                "message": "Your card has expired."})  # fmt: skip
        return self.event(kind, intent)

    # -- the API ---------------------------------------------------------------------------------

    async def _recorded(self, request: web.Request) -> tuple[Recorded, web.Response | None]:
        """The request, recorded; an answer already (refused, or a replay), or None."""
        form = dict(parse_qsl((await request.read()).decode(), keep_blank_values=True))
        key = request.headers.get("Idempotency-Key")
        seen = request.method == "POST" and key is not None and key in self._answers
        record = Recorded(request.method, request.path, form, key, replayed=seen)
        self.requests.append(record)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return record, _error(401, "invalid_request_error", "api_key_invalid",
                                  "Invalid API Key provided.")  # fmt: skip
        if seen and key is not None:
            status, body = self._answers[key]
            return record, web.Response(status=status, body=body,
                                        content_type="application/json")  # fmt: skip
        return record, None

    def _answer(self, record: Recorded, response: web.Response) -> web.Response:
        if record.idempotency_key and isinstance(response.body, bytes):
            self._answers[record.idempotency_key] = (response.status, response.body)
        return response

    async def _create_session(self, request: web.Request) -> web.Response:
        record, early = await self._recorded(request)
        if early is not None:
            return early
        f = record.form
        session_id = new_id("cs")
        amount = int(f["line_items[0][price_data][unit_amount]"]) * int(
            f.get("line_items[0][quantity]", "1"))
        session = {
            "id": session_id, "object": "checkout.session", "mode": f.get("mode"),
            "url": f"{self.base_url}/pay/{session_id}", "amount_total": amount,
            "currency": f["line_items[0][price_data][currency]"], "status": "open",
            "client_reference_id": f.get("client_reference_id"), "payment_status": "unpaid",
            "metadata": _sub(f, "metadata"), "payment_intent": None,
            "success_url": f.get("success_url"), "cancel_url": f.get("cancel_url"),
            "livemode": False, "created": int(time.time()),
        }  # fmt: skip
        self.sessions[session_id] = session
        return self._answer(record, web.json_response(session))

    def _intent(self, f: dict[str, str], status: str) -> dict[str, Any]:
        amount = int(f["amount"])
        intent = {
            "id": new_id("pi"), "object": "payment_intent", "amount": amount,
            "amount_received": amount if status == "succeeded" else 0,
            "currency": f["currency"], "customer": f.get("customer"),
            "payment_method": f.get("payment_method"), "status": status,
            "metadata": _sub(f, "metadata"), "livemode": False, "created": int(time.time()),
            "last_payment_error": None,
        }  # fmt: skip
        self.intents[intent["id"]] = intent
        return intent

    async def _create_intent(self, request: web.Request) -> web.Response:
        record, early = await self._recorded(request)
        if early is not None:
            return early
        if self.decline:
            intent = self._intent(record.form, "requires_payment_method")
            return self._answer(record, _error(
                402, "card_error", "card_declined", "Your card was declined.",
                decline_code=self.decline, payment_intent=intent))  # fmt: skip
        intent = self._intent(record.form, self.intent_status)
        return self._answer(record, web.json_response(intent))

    async def _create_refund(self, request: web.Request) -> web.Response:
        record, early = await self._recorded(request)
        if early is not None:
            return early
        intent = self.intents.get(record.form.get("payment_intent", ""))
        if intent is None:
            return self._answer(record, _error(404, "invalid_request_error", "resource_missing",
                                               "No such payment_intent."))  # fmt: skip
        amount = int(record.form.get("amount", intent["amount_received"]))
        refunded = sum(r["amount"] for r in self.refunds.values()
                       if r["payment_intent"] == intent["id"])  # fmt: skip
        if self.refuse_refunds or amount > intent["amount_received"] - refunded:
            message = self.refuse_refunds or "Refund amount is greater than unrefunded amount."
            return self._answer(record, _error(400, "invalid_request_error",
                                               "amount_too_large", message))  # fmt: skip
        refund = {"id": new_id("re"), "object": "refund", "amount": amount, "currency": "usd",
                  "payment_intent": intent["id"], "status": "succeeded",
                  "metadata": _sub(record.form, "metadata"), "created": int(time.time())}
        self.refunds[refund["id"]] = refund
        return self._answer(record, web.json_response(refund))

    def _get(self, made: dict[str, dict[str, Any]]) -> Any:
        async def get(request: web.Request) -> web.Response:
            _, early = await self._recorded(request)
            if early is not None:
                return early
            found = made.get(request.match_info["id"])
            if found is None:
                return _error(404, "invalid_request_error", "resource_missing", "No such object.")
            return web.json_response(found)

        return get


def _sub(form: dict[str, str], name: str) -> dict[str, str]:
    """``name[key]`` fields of a form as a mapping (metadata)."""
    prefix = name + "["
    return {k[len(prefix):-1]: v for k, v in form.items() if k.startswith(prefix) and
            k.endswith("]") and "[" not in k[len(prefix):-1]}  # fmt: skip
