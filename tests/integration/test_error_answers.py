"""Every error answer is OpenAI-shaped JSON naming its request id (header and message end),
including the ones aiohttp makes before any handler runs; no secret reaches the log."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import Gateway, GatewayFactory
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import GatewayProcess

Spawn = Callable[..., Awaitable[GatewayProcess]]
CHAT = {"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def assert_error_answer(status: int, headers: Any, body: Any, code: str) -> None:
    rid = headers["X-Request-Id"]
    assert rid.startswith("req_"), headers
    error = body["error"]
    assert error["code"] == code, body
    assert set(error) == {"message", "type", "code", "param"}, body
    assert error["message"].endswith(rid), (error["message"], rid)


async def call(gw: Gateway, method: str, path: str, *, key: str | None = None,
               json: Any = None, data: bytes | None = None) -> tuple[int, Any, Any]:  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with gw.http.request(method, gw.url + path, json=json, data=data,
                               headers=headers) as r:  # fmt: skip
        return r.status, r.headers, await r.json(content_type=None)


async def test_every_error_names_its_request_id(
    make_gateway: GatewayFactory, upstream: FakeUpstream
) -> None:
    gw = await make_gateway(first_byte_timeout=0.3)
    _, key = await gw.account(topup="1.00")
    _, broke = await gw.account(topup=None)
    cases = [
        (("POST", "/v1/chat/completions"), {"key": "tg-wrong"}, 401, "invalid_api_key"),
        (("POST", "/v1/chat/completions"), {"key": key, "data": b"{nope"}, 400, "invalid_request"),
        (("POST", "/v1/chat/completions"), {"key": broke, "json": CHAT}, 403,
         "insufficient_balance"),
        (("POST", "/v1/chat/completions"), {"key": key, "json": {**CHAT, "model": "nope"}}, 400,
         "model_not_priced"),
        (("GET", "/v1/nowhere"), {"key": key}, 404, "not_found"),
        (("GET", "/v1/chat/completions"), {"key": key}, 405, "method_not_allowed"),
        (("GET", "/admin/accounts/x/wallet"), {}, 401, "invalid_admin_token"),
    ]  # fmt: skip
    for (method, path), kw, status, code in cases:
        got, headers, body = await call(gw, method, path, **kw)
        assert got == status, (path, kw, body)
        assert_error_answer(got, headers, body, code)
    upstream.delay = 1.0  # the provider's headers come after first_byte_timeout
    got, headers, body = await call(gw, "POST", "/v1/chat/completions", key=key, json=CHAT)
    assert got == 504
    assert_error_answer(got, headers, body, "upstream_timeout")
    record = await gw.record(key, headers["X-Request-Id"])  # the same id as the request's
    assert record["status"] == "failed" and record["cost"] == "0.00", record


async def raw_exchange(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5.0)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


async def test_requests_aiohttp_cannot_parse_get_json_and_their_keys_stay_out_of_the_log(
    spawn: Spawn, upstream: FakeUpstream
) -> None:
    proc = await spawn()
    secret = "tg-" + "S3cr3tK3y" * 4
    too_big = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}"
               f"\r\nX-Pad: {'p' * 20000}\r\nContent-Length: 0\r\n\r\n").encode()  # fmt: skip
    bad_line = f"POST /v1/chat completions {secret} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    bad_header = f"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: {secret}\r\n\r\n".encode()
    for raw in (too_big, bad_line, bad_header):
        status, headers, body = await raw_exchange(proc.url, raw)
        assert 400 <= status < 500, (status, body)
        assert headers["content-type"].startswith("application/json"), headers
        import orjson

        doc = orjson.loads(body)
        assert doc["error"]["message"].endswith(headers["x-request-id"]), doc
    proc.stop()
    log = proc.log.read_text()
    assert "refused an unparsable request" in log
    assert secret not in log and "S3cr3tK3y" not in log


async def test_metrics_can_require_a_token(spawn: Spawn, upstream: FakeUpstream) -> None:
    proc = await spawn(metrics_token="metrics-secret-123")
    async with aiohttp.ClientSession() as http:
        async with http.get(proc.url + "/metrics") as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "invalid_api_key"
        bearer = {"Authorization": "Bearer metrics-secret-123"}
        async with http.get(proc.url + "/metrics", headers=bearer) as r:
            assert r.status == 200 and "tollgate_requests" in await r.text()


@pytest.mark.parametrize("line", ["Authorization: Bearer tg-AAAAAAAAAAAAAAAAAAAAAAAA",
                                  "x-api-key: tg-AAAAAAAAAAAAAAAAAAAAAAAA",
                                  "token sk-ant-api03-AAAAAAAAAAAAAAAAAAAA done",
                                  "admin tga-BBBBBBBBBBBBBBBBBBBBBBBB"])  # fmt: skip
def test_the_redactor_masks_every_kind_of_secret(line: str) -> None:
    from gateway.observability.redact import Redactor

    out = Redactor(["configured-secret-1"])(line + " configured-secret-1")
    assert "AAAAAAAAAAAAAAAA" not in out and "BBBBBBBBBBBBBBBB" not in out, out
    assert "configured-secret-1" not in out and "[redacted]" in out
