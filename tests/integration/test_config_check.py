"""Mistakes caught at start (issue 14), as an operator meets them: ``tollgate config check``
prints one line per problem and exits non-zero, and ``tollgate serve`` refuses to start with
the same line. A provider without an API key is no such mistake: the gateway starts, warns
once, lists none of its models and refuses them with ``provider_not_configured``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.provider_settings import ProviderConfig
from tests.integration.conftest import GatewayFactory
from tests.support.fake_upstream import FakeUpstream
from tests.support.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
MOCK = {"name": "mock", "kind": "mock", "models": ["mock-*"]}
GOOD_PRICING = """\
models:
  mock-gpt: {input: 0.15, output: 0.60, cache_read: 0.075}
  mock-tiny: {input: 1e-7, output: 1.5e-1}
"""


def write(tmp_path: Path, pricing: str = GOOD_PRICING, **config: Any) -> Path:
    (tmp_path / "pricing.yaml").write_text(pricing)
    path = tmp_path / "gateway.yaml"
    fields = {"data_dir": "data", "pricing_file": "pricing.yaml", "providers": [MOCK], **config}
    path.write_text(yaml.safe_dump(fields))
    return path


def tollgate(*args: str) -> subprocess.CompletedProcess[str]:
    # Never a real Redis: a serve that wrongly got past its checks fails fast instead of
    # starting an embedded one.
    unset = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_") and k not in unset}
    env["TOLLGATE_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=60, env=env, cwd=REPO, check=False)  # fmt: skip


def refused_lines(config: Path) -> list[str]:
    """What both `config check` and `serve` print; both must exit 2 with the same lines."""
    check = tollgate("config", "check", "--config", str(config))
    serve = tollgate("serve", "--config", str(config), "--port", str(free_port()))
    assert (check.returncode, serve.returncode) == (2, 2), (check.stderr, serve.stderr)
    assert check.stdout == "" and "listening" not in serve.stdout
    assert check.stderr == serve.stderr
    return check.stderr.splitlines()


def test_a_clean_config_checks_ok(tmp_path: Path) -> None:
    config = write(tmp_path, aliases={"fast": "mock-gpt"})
    done = tollgate("config", "check", "--config", str(config))
    assert done.returncode == 0, done.stderr
    pricing = tmp_path / "pricing.yaml"
    assert done.stdout == f"{config}: ok; 1 provider(s), 2 priced model(s) in {pricing}\n"
    assert done.stderr == ""


def test_the_shipped_config_checks_ok_without_provider_keys() -> None:
    done = tollgate("config", "check", "--config", "config/gateway.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warning: ") == 2  # openai and anthropic have no key here


CASES = {
    "a. alias to an unpriced model": (
        {"aliases": {"fast": "mock-gtp"}}, GOOD_PRICING,
        "{config}: aliases.fast: points at 'mock-gtp', which has no price in {pricing}",
    ),
    "b. duplicate key in the pricing file": (
        {}, GOOD_PRICING + "  mock-gpt: {input: 9}\n",
        "{pricing}: models.mock-gpt: duplicate key, on lines 2 and 4;",
    ),
    "b. duplicate key in the config file": (
        {"redis_timeout": 2}, GOOD_PRICING, "{config}: redis_timeout: duplicate key, on lines",
    ),
    "c. a price that is no number": (
        {}, "models:\n  mock-gpt: {input: true}\n",
        "{pricing}: models.mock-gpt.input: must be a number (USD per 1M tokens), not true",
    ),
    "c. a negative price in exponent form": (
        {}, "models:\n  mock-gpt: {input: -1e-7}\n",
        "{pricing}: models.mock-gpt.input: must not be negative",
    ),
    "d. a provider glob behind another": (
        {"providers": [MOCK, {**MOCK, "name": "later", "models": ["mock-gpt*"]}]}, GOOD_PRICING,
        "{config}: providers[1].models[0]: 'mock-gpt*' can never route a model to 'later'",
    ),
    "d. a pricing glob behind another": (
        {}, GOOD_PRICING + "  mock-*: {input: 1}\n  '*mock-*': {input: 2}\n",
        "{pricing}: models.mock-*: can never price a model: every name it matches is priced "
        "first by *mock-*",
    ),
    "e. read_timeout above total_timeout": (
        {"read_timeout": 120, "first_byte_timeout": 30, "total_timeout": 60}, GOOD_PRICING,
        "{config}: read_timeout: must not exceed total_timeout (60 s)",
    ),
    "e. client_write_timeout above total_timeout": (
        {"client_write_timeout": 90, "read_timeout": 30, "first_byte_timeout": 30,
         "total_timeout": 60}, GOOD_PRICING,
        "{config}: client_write_timeout: must not exceed total_timeout (60 s)",
    ),
    "3. an Anthropic-routed model without cache prices": (
        {"providers": [MOCK, {"name": "bedrock", "kind": "anthropic", "api_key": "sk-a",
                              "base_url": "http://127.0.0.1:9/v1", "models": ["sonnet-*"]}]},
        GOOD_PRICING + "  sonnet-5: {input: 3, output: 15, cache_read: 0.3}\n",
        "{pricing}: models.sonnet-5: is routed to the Anthropic provider 'bedrock' but has no "
        "cache_write price",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_each_mistake_is_one_line_from_check_and_from_serve(tmp_path: Path, case: str) -> None:
    config_fields, pricing, expected = CASES[case]
    config = write(tmp_path, pricing, **config_fields)
    if case == "b. duplicate key in the config file":
        config.write_text(config.read_text() + "redis_timeout: 3\n")
    lines = refused_lines(config)
    line = expected.format(config=config, pricing=tmp_path / "pricing.yaml")
    assert len(lines) == 1 and lines[0].startswith(f"tollgate: {line}"), lines


def test_several_mistakes_are_several_lines(tmp_path: Path) -> None:
    config = write(tmp_path, GOOD_PRICING + "  claude-x: {input: 3}\n",
                   aliases={"fast": "nothing"},
                   providers=[MOCK, {"name": "claude", "kind": "anthropic", "api_key": "k",
                                     "models": ["claude-*", "mock-x*"]}])  # fmt: skip
    lines = refused_lines(config)
    assert [line.split(": ")[2] for line in lines] == [
        "aliases.fast", "providers[1].models[1]", "models.claude-x"
    ]  # fmt: skip


# --- 2. a provider without an API key -----------------------------------------------------

NO_KEY = "TOLLGATE_TEST_UNSET_OPENAI_KEY"


async def test_a_keyless_providers_models_are_not_listed_and_refused_before_any_hold(
    make_gateway: GatewayFactory, upstream: FakeUpstream
) -> None:
    openai_without_key = ProviderConfig(
        name="openai", kind="openai", base_url=upstream.base_url,  # type: ignore[attr-defined]
        models=("gpt-*",), api_key_env=NO_KEY,
    )  # fmt: skip
    mock = ProviderConfig(name="mock", kind="mock", base_url="", models=("mock-*",))
    gw = await make_gateway(providers=(mock, openai_without_key))
    account, key = await gw.account()
    auth = {"Authorization": f"Bearer {key}"}
    async with gw.http.get(gw.url + "/v1/models", headers=auth) as r:
        listed = [m["id"] for m in (await r.json())["data"]]
    assert "mock-gpt" in listed and not [m for m in listed if m.startswith("gpt-")]
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with gw.http.post(gw.url + "/v1/chat/completions", json=body, headers=auth) as r:
        status, answer, request_id = r.status, await r.json(), r.headers.get("X-Request-Id")
    assert status == 400 and request_id
    assert answer["error"]["code"] == "provider_not_configured"
    assert answer["error"]["type"] == "invalid_request_error"
    assert NO_KEY in answer["error"]["message"] and "'openai'" in answer["error"]["message"]
    assert upstream.requests == []
    wallet = await gw.wallet(account)
    assert (wallet["held"], wallet["balance"]) == ("0.00", "10.00")
    async with gw.http.post(gw.url + "/v1/chat/completions", headers=auth,
                            json={**body, "model": "mock-gpt"}) as r:  # fmt: skip
        assert r.status == 200  # the mock needs no key


class Served:
    """``tollgate serve --workers 2`` on the test Redis, its output in ``log``."""

    def __init__(self, config: Path, redis_target: Any, log: Path) -> None:
        self.port, self.log = free_port(), log
        env = {k: v for k, v in os.environ.items() if k != NO_KEY}
        env.update(TOLLGATE_REDIS_URL=redis_target.url, TOLLGATE_ADMIN_TOKEN="t",
                   TOLLGATE_LOG_LEVEL="WARNING")  # fmt: skip
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port",
                 str(self.port), "--workers", "2"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
            )  # fmt: skip

    async def wait_ready(self) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(400):
                assert self.proc.poll() is None, "gateway exited"
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("gateway not ready")

    def stop(self) -> str:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        return self.log.read_text()


async def test_serve_warns_once_about_a_keyless_provider_and_starts(
    tmp_path: Path, redis_target: Any, upstream: FakeUpstream
) -> None:
    keyless = {"name": "openai", "kind": "openai", "base_url": upstream.base_url,  # type: ignore[attr-defined]
               "api_key_env": NO_KEY, "models": ["gpt-*"]}  # fmt: skip
    config = write(tmp_path, redis_cluster=redis_target.cluster, providers=[MOCK, keyless])
    served = Served(config, redis_target, tmp_path / "serve.log")
    try:
        await served.wait_ready()
    finally:
        text = served.stop()
    assert text.count(f"providers[1] (openai): no API key: the environment variable {NO_KEY}") == 1
    assert "provider_not_configured" in text
