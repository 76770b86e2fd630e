"""Rotating the admin token without downtime: the new token works at once, the old one until
its grace period ends, in every gateway process; configured tokens may be several."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.cli import operator
from gateway.edge.admin_tokens import AdminTokens
from tests.integration.conftest import ADMIN_TOKEN
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import GatewayProcess

pytestmark = pytest.mark.redis_cluster_too

Spawn = Callable[..., Awaitable[GatewayProcess]]


async def status_with(http: aiohttp.ClientSession, url: str, token: str) -> int:
    async with http.get(url + "/admin/accounts",
                        headers={"Authorization": f"Bearer {token}"}) as r:  # fmt: skip
        return r.status


async def rotate(http: aiohttp.ClientSession, url: str, token: str, grace: int) -> Any:
    async with http.post(url + "/admin/tokens/rotate", json={"grace_seconds": grace},
                         headers={"Authorization": f"Bearer {token}"}) as r:  # fmt: skip
        assert r.status == 201, await r.text()
        return await r.json()


async def test_a_rotated_token_works_everywhere_at_once_and_the_old_one_until_its_grace_ends(
    spawn: Spawn, upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    a, b = await spawn(), await spawn()
    first = await rotate(http, a.url, ADMIN_TOKEN, 60)
    assert first["previous_valid_until"] is None  # the configured token: until it is unset
    assert await status_with(http, b.url, first["token"]) == 200  # the other process too
    assert await status_with(http, b.url, ADMIN_TOKEN) == 200
    second = await rotate(http, b.url, first["token"], 1)
    assert second["previous_valid_until"] is not None
    for gw in (a, b):
        assert await status_with(http, gw.url, second["token"]) == 200
        assert await status_with(http, gw.url, first["token"]) == 200  # within its grace
    await asyncio.sleep(2.2)  # past the grace (and the one-second cache)
    for gw in (a, b):
        assert await status_with(http, gw.url, first["token"]) == 401
        assert await status_with(http, gw.url, second["token"]) == 200
    async with http.post(a.url + "/admin/tokens/rotate", json={"grace_seconds": -1},
                         headers={"Authorization": f"Bearer {second['token']}"}) as r:  # fmt: skip
        assert r.status == 400


async def test_several_configured_tokens_are_each_valid(redis: Any) -> None:
    """TOLLGATE_ADMIN_TOKEN="new,old" while clients move from one to the other."""
    old, new = "old-admin-token", "new-admin-token"
    tokens = AdminTokens([hashlib.sha256(t.encode()).hexdigest() for t in (new, old)], redis)
    assert await tokens.valid(new) and await tokens.valid(old)
    assert not await tokens.valid("neither")


async def test_the_cli_rotates(spawn: Spawn, upstream: FakeUpstream, capsys: Any,
                               monkeypatch: Any, http: aiohttp.ClientSession) -> None:  # fmt: skip
    proc = await spawn()
    monkeypatch.setenv("TOLLGATE_URL", proc.url)
    monkeypatch.setenv("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
    assert operator.run(["admin-token", "rotate", "--grace", "10", "--json"]) == 0
    made = orjson.loads(capsys.readouterr().out)
    assert made["token"].startswith("tga-")
    assert await status_with(http, proc.url, made["token"]) == 200
    assert operator.run(["admin-token", "rotate", "--token", made["token"]]) == 0
    assert "previous_valid_until" in capsys.readouterr().out
