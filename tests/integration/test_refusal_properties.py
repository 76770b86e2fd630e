"""Hostile bodies through a live gateway (hypothesis): never a 5xx, errors OpenAI-shaped with
their request id, and a refused request holds nothing, charges nothing and reaches no provider.
The ledger identity is asserted after the test (the redis fixture)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.apis import default_endpoints
from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream
from tests.support.request_strategies import ALIASES, JSON_VALUES, dumps, near_valid_bodies

JSON_PATHS = sorted(p for p in default_endpoints(ALIASES) if p != "/audio/transcriptions")

LIVE = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])  # fmt: skip


@pytest.fixture
async def funded(gateway: Gateway) -> tuple[str, str]:
    return await gateway.account(topup="5.00")


@pytest.mark.parametrize("path", JSON_PATHS)
@LIVE
@given(data=st.data())
async def test_a_refused_request_holds_and_charges_nothing(
    gateway: Gateway, upstream: FakeUpstream, funded: tuple[str, str], path: str,
    data: st.DataObject,
) -> None:  # fmt: skip
    account, key = funded
    body = data.draw(near_valid_bodies(path) | JSON_VALUES.map(dumps))
    before = await gateway.wallet(account)
    forwarded = len(upstream.requests)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with gateway.http.post(gateway.url + "/v1" + path, data=body, headers=headers) as r:
        status, raw = r.status, await r.read()
        rid = r.headers.get("X-Request-Id", "")
    assert status < 500 or status in (502, 504), (status, raw)
    if status < 400:
        return
    error: dict[str, Any] = orjson.loads(raw)["error"]
    assert error["message"].endswith(rid), (status, raw)
    after = await gateway.wallet(account)
    assert after == before, (body, status, raw)  # refused here or by the provider: free
    if len(upstream.requests) == forwarded:  # the gateway's own refusal
        assert set(error) == {"message", "type", "code", "param"}, (status, raw)
        assert status not in (502, 504), (status, raw)
