"""The client API besides the metered calls: what a customer's key may read and do with its own
account (``GET /v1/models``, ``/v1/wallet``, ``/v1/requests/{id}``, ``POST
/v1/wallet/redeem``)."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from gateway import errors
from gateway.billing.display_units import with_display
from gateway.billing.vouchers import Vouchers
from gateway.billing.wallet import Wallet
from gateway.edge.access import MODEL_ROLES, check_role
from gateway.edge.auth import Authenticator
from gateway.edge.httpjson import json_object, json_response
from gateway.edge.model_access import model_list
from gateway.prices.holder import PricingHolder
from gateway.provider_settings import ProviderConfig


class ClientApi:
    def __init__(
        self, *, auth: Authenticator, wallet: Wallet, vouchers: Vouchers, pricing: PricingHolder,
        providers: Sequence[ProviderConfig],
    ) -> None:  # fmt: skip
        self._auth, self._wallet, self._vouchers = auth, wallet, vouchers
        self._pricing, self._providers = pricing, providers

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/v1/models", self.models),
            web.get("/v1/wallet", self.wallet),
            web.post("/v1/wallet/redeem", self.redeem),
            web.get("/v1/requests/{request_id}", self.request_record),
        ]

    async def models(self, request: web.Request) -> web.Response:
        caller = await self._auth.authenticate(request)
        return json_response(model_list(self._pricing.table, self._providers, caller.key.models))

    async def wallet(self, request: web.Request) -> web.Response:
        caller = await self._auth.authenticate(request)
        view = (await self._wallet.view(caller.account.id)).to_json()
        return json_response(with_display(view, caller.account.credits_per_usd))

    async def redeem(self, request: web.Request) -> web.Response:
        """A voucher's credit for the caller's account: 201 with the grant, once per account."""
        caller = await self._auth.authenticate(request)
        check_role(caller, MODEL_ROLES, "redeeming a voucher")  # a viewer only reads
        code = (await json_object(request)).get("code")
        if not isinstance(code, str):
            raise errors.InvalidRequest("'code' must be the voucher's code.", param="code")
        txn = await self._vouchers.redeem(caller.account.id, code)
        return json_response(txn.to_json(), status=201)

    async def request_record(self, request: web.Request) -> web.Response:
        caller = await self._auth.authenticate(request)
        rid = request.match_info["request_id"]
        record = await self._wallet.request_view(caller.account.id, rid)
        if record is None:
            raise errors.NotFound(f"No request {rid!r} for this account.")
        return json_response(record)
