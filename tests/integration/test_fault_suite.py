"""The attack suite, kept: misbehaving upstreams and abusive clients against one gateway
process, while a bystander account's requests keep flowing. Every bystander request succeeds;
every hostile one is billed as the rules say; the ledger identity holds (the redis fixture)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.apis.tokens import TokenCounter
from pricing import parse_usd
from tests.integration.conftest import Gateway, remote, start_upstream
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import GatewayProcess
from tests.support.stalled_client import open_stalled

pytestmark = pytest.mark.redis_cluster_too

Spawn = Callable[..., Awaitable[GatewayProcess]]
CHAT = {"model": "gpt-4o-mini", "max_tokens": 50,
        "messages": [{"role": "user", "content": "tell me something"}]}  # fmt: skip


@pytest.fixture
async def quiet_upstream(aiohttp_server: Any, counter: TokenCounter) -> FakeUpstream:
    """A second provider that always behaves: the bystander's."""
    return await start_upstream(aiohttp_server, counter)


class Bystander:
    """Another customer, calling all the while: embeddings through its own provider and chat
    through the built-in mock."""

    def __init__(self, gw: Gateway, key: str) -> None:
        self.gw, self.key = gw, key
        self.statuses: list[int] = []
        self.errors: list[str] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        bodies = [("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"}),
                  ("/v1/chat/completions", {"model": "mock-gpt", "max_tokens": 5,
                                            "messages": [{"role": "user", "content": "hi"}]})]
        i = 0
        while not self.stop.is_set():
            path, body = bodies[i % 2]
            i += 1
            try:
                async with self.gw.http.post(self.gw.url + path, json=body, headers={
                        "Authorization": f"Bearer {self.key}"}) as r:  # fmt: skip
                    await r.read()
                    self.statuses.append(r.status)
            except aiohttp.ClientError as exc:
                self.errors.append(repr(exc))
            await asyncio.sleep(0.02)


async def call(gw: Gateway, key: str, **extra: Any) -> tuple[int, bytes, dict[str, str]]:
    async with gw.http.post(gw.url + "/v1/chat/completions", json={**CHAT, **extra},
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        try:
            data = await r.read()
        except aiohttp.ClientPayloadError:  # a stream the gateway had to end early
            data = b""
        return r.status, data, {k.lower(): v for k, v in r.headers.items()}


async def settled(gw: Gateway, key: str, rid: str) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for _ in range(200):
        rec = await gw.record(key, rid)
        if rec["status"] != "pending":
            return rec
        await asyncio.sleep(0.05)
    raise AssertionError(f"{rid} still pending: {rec}")


async def raw(url: str, request: bytes, pace: float = 0.0) -> tuple[int, dict[str, Any]]:
    """Send ``request`` (a byte at a time every ``pace`` seconds after its headers, if set)
    and read the answer: (status, JSON body)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head, sep, body = request.partition(b"\r\n\r\n")
    writer.write(head + sep)
    for i in range(len(body)):
        if reader.at_eof() or (pace and writer.is_closing()):
            break
        writer.write(body[i:i + 1] if pace else body)
        if not pace:
            break
        await asyncio.sleep(pace)
        if reader._buffer:  # type: ignore[attr-defined]  # the answer came early
            break
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(v) for k, _, v in (ln.partition(":") for ln in lines)
                  if k.lower() == "content-length")  # fmt: skip
    body = await asyncio.wait_for(reader.readexactly(length), 10.0)
    writer.close()
    return int(lines[0].split()[1]), orjson.loads(body)


async def test_misbehaving_upstreams_and_abusive_clients_hurt_nobody_else(
    spawn: Spawn, upstream: FakeUpstream, quiet_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
) -> None:  # fmt: skip
    proc = await spawn(
        client_write_timeout=1.0, client_body_timeout=1.0, first_byte_timeout=1.0,
        read_timeout=1.0, total_timeout=10.0,
        providers=[
            {"name": "mock", "kind": "mock", "models": ["mock-*"]},
            {"name": "openai", "kind": "openai", "base_url": upstream.base_url,  # type: ignore[attr-defined]
             "api_key": "sk-upstream-secret", "models": ["gpt-*"]},
            {"name": "quiet", "kind": "openai", "base_url": quiet_upstream.base_url,  # type: ignore[attr-defined]
             "api_key": "sk-upstream-secret", "models": ["text-embedding-*"]},
        ],
    )  # fmt: skip
    gw = remote(proc, http)
    _, bystander_key = await gw.account(topup="100.00")
    account, key = await gw.account(topup="10.00")
    bystander = Bystander(gw, bystander_key)
    running = asyncio.create_task(bystander.run())
    seen: dict[str, dict[str, Any]] = {}

    # Upstreams that misbehave.
    upstream.status, upstream.usage_override = 500, {"prompt_tokens": 9, "completion_tokens": 9}
    status, _, headers = await call(gw, key)
    assert status == 500 and headers["x-usage-cost"] == "0.00"
    seen["500 with usage"] = await settled(gw, key, headers["x-request-id"])
    upstream.status = upstream.usage_override = None

    upstream.delay = 2.0  # past first_byte_timeout
    status, body, headers = await call(gw, key)
    assert status == 504 and orjson.loads(body)["error"]["code"] == "upstream_timeout"
    seen["hang"] = await settled(gw, key, headers["x-request-id"])
    upstream.delay = 0.0

    upstream.gate = asyncio.Event()  # silent after the first chunk: past read_timeout
    status, _, headers = await call(gw, key, stream=True)
    seen["hang mid-stream"] = await settled(gw, key, headers["x-request-id"])
    upstream.gate.set()
    upstream.gate = None

    upstream.raw_answer = ("application/json", b"{not json")
    status, _, headers = await call(gw, key)
    seen["invalid JSON"] = await settled(gw, key, headers["x-request-id"])
    upstream.raw_answer = None

    upstream.drop_after = 2
    status, _, headers = await call(gw, key, stream=True)
    seen["truncated stream"] = await settled(gw, key, headers["x-request-id"])
    upstream.drop_after = None

    upstream.usage_override = {"completion_tokens": 10**15}
    status, _, headers = await call(gw, key)
    seen["lying usage"] = await settled(gw, key, headers["x-request-id"])
    upstream.usage_override = None

    # Clients that abuse.
    upstream.pad_events = 200_000  # ~14 MB a stream: far more than the sockets buffer
    big = {**CHAT, "stream": True, "max_tokens": 500,
           "messages": [{"role": "user", "content": "tell me a long story " * 20}]}  # fmt: skip
    stalled = await open_stalled(gw.url + "/v1/chat/completions", key, big)
    seen["stops reading"] = await settled(gw, key, stalled.request_id)
    stalled.close()
    gone = await open_stalled(gw.url + "/v1/chat/completions", key, big)
    await asyncio.sleep(0.3)
    gone.close()
    seen["hangs up mid-stream"] = await settled(gw, key, gone.request_id)
    upstream.pad_events = 0

    payload = orjson.dumps(CHAT)
    slow = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            ).encode() + payload  # fmt: skip
    t0 = time.monotonic()
    status, doc = await raw(gw.url, slow, pace=0.2)
    assert status == 408 and doc["error"]["code"] == "request_timeout", doc
    assert time.monotonic() - t0 < 5.0
    huge = (f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            f"X-Pad: {'p' * 20000}\r\n\r\n").encode()  # fmt: skip
    status, doc = await raw(gw.url, huge)
    assert status in (400, 431) and doc["error"]["message"].startswith("The request line")

    bystander.stop.set()
    await running
    assert bystander.errors == []
    assert bystander.statuses and set(bystander.statuses) == {200}, bystander.statuses
    assert len(bystander.statuses) >= 20

    costs = {name: parse_usd(rec["cost"]) for name, rec in seen.items()}
    sources = {name: rec["usage_source"] for name, rec in seen.items()}
    assert costs["500 with usage"] == 0 and costs["hang"] == 0, costs
    assert seen["500 with usage"]["status"] == seen["hang"]["status"] == "failed"
    for name in ("hang mid-stream", "invalid JSON", "truncated stream", "lying usage"):
        assert sources[name] == "estimated" and costs[name] > 0, (name, seen[name])
    assert [a["kind"] for a in seen["invalid JSON"]["anomalies"]] == ["unexpected_body"]
    assert [a["kind"] for a in seen["lying usage"]["anomalies"]] == ["unreadable_usage"]
    assert seen["lying usage"]["usage"]["output_tokens"] <= 50
    for name in ("stops reading", "hangs up mid-stream"):
        assert sources[name] == "partial" and seen[name]["status"] == "settled", seen[name]
    wallet = await gw.wallet(account)
    assert wallet["held"] == "0.00", wallet
    assert parse_usd(wallet["balance"]) == parse_usd("10.00") - sum(costs.values())
