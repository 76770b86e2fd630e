from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from prometheus_client import CollectorRegistry

from gateway.apis.tokens import TokenCounter
from gateway.app import create_app
from gateway.billing.lua_scripts import all_sources
from gateway.provider_settings import ProviderConfig
from gateway.settings import Settings
from gateway.store.fast_client import FastScripts
from pricing import parse_pricing
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import GatewayProcess, write_config

ADMIN_TOKEN = "test-admin-token"
ADMIN_SHA = __import__("hashlib").sha256(ADMIN_TOKEN.encode()).hexdigest()

PRICING = """
version: test-1
models:
  gpt-4o-mini: {input: 0.15, output: 0.60, cache_read: 0.075, max_output_tokens: 1000}
  gpt-flat: {per_request: 0.002, max_output_tokens: 100}
  gpt-legacy-*: {input: 1.00, output: 2.00}
  text-embedding-3-small: {input: 0.02}
  mock-gpt: {input: 0.15, output: 0.60, cache_read: 0.075, max_output_tokens: 1000}
  mock-claude: {input: 3.00, output: 15.00, cache_read: 0.30, cache_write: 3.75}
  mock-image: {per_image: {"1024x1024": 0.04}}
  mock-whisper: {per_audio_minute: 0.006}
  dall-e-3: {per_image: {"1024x1024": 0.04, "1024x1024/hd": 0.08, "1792x1024/hd": 0.12}}
  whisper-1: {per_audio_minute: 0.006}
  claude-sonnet-4-6: {input: 3.00, output: 15.00, cache_read: 0.30, cache_write: 3.75,
                      cache_write_1h: 6.00, max_output_tokens: 64000}
  unrouted-model: {input: 1.00, output: 1.00}
"""


@pytest.fixture(scope="session")
def counter() -> TokenCounter:
    c = TokenCounter()
    c.warm()
    return c


async def start_upstream(aiohttp_server: Any, counter: TokenCounter) -> FakeUpstream:
    """A fake provider on port 0; ``base_url`` is where a gateway's config points at it."""
    fake = FakeUpstream(counter)
    server = await aiohttp_server(fake.app)
    fake.base_url = f"http://127.0.0.1:{server.port}/v1"  # type: ignore[attr-defined]
    return fake


@pytest.fixture
async def upstream(aiohttp_server: Any, counter: TokenCounter) -> FakeUpstream:
    return await start_upstream(aiohttp_server, counter)


def make_settings(upstream_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    settings = Settings(
        source="test",
        redis_url=None,
        data_dir=tmp_path,
        pricing_file=tmp_path / "pricing.yaml",
        providers=(
            ProviderConfig(name="mock", kind="mock", base_url="", models=("mock-*",)),
            ProviderConfig(
                name="openai",
                kind="openai",
                base_url=upstream_url,
                models=("gpt-*", "text-embedding-*", "dall-e-*", "whisper-*"),
                api_key="sk-upstream-secret",
            ),
            ProviderConfig(
                name="anthropic",
                kind="anthropic",
                base_url=upstream_url,
                models=("claude-*",),
                api_key="sk-ant-upstream-secret",
            ),
        ),
        admin_token=ADMIN_TOKEN,
    )
    return settings.with_overrides(**overrides)


@dataclass
class Gateway:
    url: str
    http: aiohttp.ClientSession
    registry: CollectorRegistry
    app: Any
    clients: list[Any] = field(default_factory=list)

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def admin(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        async with self.http.request(
            method, self.url + path, json=json, headers=self.admin_headers
        ) as r:
            return r.status, await r.json()

    async def account(
        self,
        *,
        topup: str | None = "10.00",
        rpm: int | None = None,
        tpm: int | None = None,
        models: list[str] | None = None,
        **fields: Any,
    ) -> tuple[str, str]:
        """A new account with one key (and a top-up): returns (account id, key secret)."""
        status, acct = await self.admin(
            "POST", "/admin/accounts", {"name": "acme", "plan": "default", **fields}
        )
        assert status == 201, acct
        status, key = await self.admin(
            "POST",
            f"/admin/accounts/{acct['id']}/keys",
            {"project": "default", "name": "ci", "rpm": rpm, "tpm": tpm, "models": models},
        )
        assert status == 201, key
        if topup is not None:
            status, _ = await self.admin(
                "POST",
                f"/admin/accounts/{acct['id']}/topups",
                {"amount": topup, "order_id": f"seed-{acct['id']}"},
            )
            assert status == 201
        return acct["id"], key["key"]

    async def wallet(self, account_id: str) -> dict[str, str]:
        status, body = await self.admin("GET", f"/admin/accounts/{account_id}/wallet")
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    def openai(self, key: str) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0)
        self.clients.append(client)
        return client

    def anthropic(self, key: str) -> anthropic.AsyncAnthropic:
        # The anthropic SDK appends /v1/messages itself.
        client = anthropic.AsyncAnthropic(base_url=self.url, api_key=key, max_retries=0)
        self.clients.append(client)
        return client

    async def record(self, key: str, request_id: str) -> dict[str, Any]:
        """The caller's metered record of one request."""
        async with self.http.get(
            f"{self.url}/v1/requests/{request_id}", headers={"Authorization": f"Bearer {key}"}
        ) as r:
            assert r.status == 200, await r.text()
            return await r.json()  # type: ignore[no-any-return]

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        await self.http.close()


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make_gateway(
    aiohttp_server: Any,
    redis: Any,
    redis_target: Any,
    upstream: FakeUpstream,
    tmp_path: Path,
    counter: TokenCounter,
) -> AsyncIterator[GatewayFactory]:
    """In-process gateways as the CLI builds them: scripts over the lean client on a single
    Redis, through redis-py on a cluster."""
    gateways: list[Gateway] = []
    fast: list[FastScripts] = []
    servers: list[Any] = []

    async def factory(**overrides: Any) -> Gateway:
        registry = CollectorRegistry()
        scripts = None
        if not redis_target.cluster and FastScripts.supports(redis_target.url):
            scripts = FastScripts(redis_target.url, all_sources())
            fast.append(scripts)
        settings = make_settings(
            upstream.base_url,
            tmp_path,  # type: ignore[attr-defined]
            **overrides,
        )
        app = create_app(
            settings,
            redis=redis,
            admin_token_sha256=ADMIN_SHA,
            registry=registry,
            pricing=parse_pricing(PRICING, source="test"),
            counter=counter,
            scripts=scripts,
        )
        server = await aiohttp_server(app)
        servers.append(server)
        gw = Gateway(
            url=f"http://127.0.0.1:{server.port}",
            http=aiohttp.ClientSession(),
            registry=registry,
            app=app,
        )
        gateways.append(gw)
        return gw

    yield factory
    for gw in gateways:
        await gw.close()
    for server in servers:  # the apps stop while Redis and its clients are still there
        await server.close()
    for scripts in fast:
        await scripts.aclose()


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> Gateway:
    return await make_gateway()


@pytest.fixture
async def spawn(
    redis_target: Any, redis: Any, upstream: FakeUpstream, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[GatewayProcess]]]:
    """Start gateways as real processes on the test Redis; all stopped at the end."""
    started: list[GatewayProcess] = []

    async def factory(**config: Any) -> GatewayProcess:
        if redis_target.cluster:
            config = {"redis_cluster": True, **config}
        path = write_config(tmp_path, upstream.base_url, PRICING, **config)  # type: ignore[attr-defined]
        proc = GatewayProcess(path, redis_target.url)
        started.append(proc)
        await proc.wait_ready()
        return proc

    yield factory
    for proc in started:
        proc.stop()


def remote(proc: GatewayProcess, http: aiohttp.ClientSession, registry: Any = None) -> Gateway:
    """A Gateway helper pointed at a gateway process."""
    return Gateway(url=proc.url, http=http, registry=registry or CollectorRegistry(), app=None)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for talking to gateway processes."""
    async with aiohttp.ClientSession() as session:
        yield session
