"""GET /openapi.json: a valid OpenAPI 3 document naming every route, that a live gateway keeps to.

The fuzzing run (schemathesis over hypothesis) sends each operation a bounded number of requests
generated from the document, authenticated as a funded customer or as the operator, and checks
every answer: no 5xx, a documented status and content type, a body and headers that fit.
schemathesis calls with ``requests`` (blocking), so it runs in a worker thread while this
test's event loop serves the gateway.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import orjson
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.conftest import ADMIN_TOKEN, Gateway

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES = 25  # per operation: ~650 requests in all, a few seconds
# A priced model for each metered path, served in-process (mock) or over HTTP (the fake
# upstream); without one, nearly every generated model is refused as unpriced.
MODELS = {
    "/v1/chat/completions": ("mock-gpt", "gpt-4o-mini"),
    "/v1/completions": ("mock-gpt", "gpt-4o-mini"),
    "/v1/responses": ("mock-gpt", "gpt-4o-mini"),
    "/v1/embeddings": ("mock-gpt", "text-embedding-3-small"),
    "/v1/messages": ("mock-claude", "claude-sonnet-4-6"),
    "/v1/images/generations": ("mock-image", "dall-e-3"),
    "/v1/audio/transcriptions": ("mock-whisper", "whisper-1"),
}
# Strategies built from a schema (patterns, nested objects) trip these now and then; they
# say nothing about the gateway.
SCHEMA_HEALTH_CHECKS = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
]
STREAMED = {"/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"}


async def document(gateway: Gateway) -> dict[str, Any]:
    async with gateway.http.get(gateway.url + "/openapi.json") as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        return orjson.loads(await r.read())  # type: ignore[no-any-return]


def registered_routes(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route; HEAD is the one aiohttp adds beside each GET."""
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


async def test_document_is_valid_openapi_and_names_every_route(gateway: Gateway) -> None:
    doc = await document(gateway)
    assert doc["openapi"].startswith("3.")
    schemathesis.openapi.from_dict(doc, config=schemathesis.Config()).validate()
    for ref in set(refs(doc)):
        resolve(doc, ref)  # every $ref points at something
    registered, documented = registered_routes(gateway.app), documented_routes(doc)
    assert registered - documented == set(), "routes the document does not describe"
    assert documented - registered == set(), "operations the app does not serve"


# -- the fuzzing run ---------------------------------------------------------------------------


def ledger_lines(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Each line of ``GET /admin/ledger`` is a ``LedgerEntry`` (a JSON lines body is one
    string to OpenAPI 3.1, so schemathesis cannot check it by itself)."""
    if case.operation.path != "/admin/ledger" or response.status_code != 200:
        return
    doc = case.operation.schema.raw_schema
    validator = jsonschema_rs.Draft202012Validator(
        {"$ref": "#/components/schemas/LedgerEntry", "components": doc["components"]}
    )
    for line in response.content.splitlines():
        validator.validate(orjson.loads(line))


def body_fields(path: str) -> st.SearchStrategy[dict[str, Any]]:
    """Fields to set in a generated body: none, or a priced model (and, where the answer can
    stream, whether it does: a generated nullable boolean is seldom true)."""
    models = MODELS.get(path)
    if not models:
        return st.just({})
    stream = st.booleans() if path in STREAMED else st.just(False)
    priced = st.builds(lambda m, s: {"model": m, "stream": True} if s else {"model": m},
                       st.sampled_from(models), stream)  # fmt: skip
    return st.one_of(st.just({}), priced)


def strategies(
    operation: schemathesis.APIOperation, fixed: dict[str, list[str]]
) -> st.SearchStrategy[schemathesis.Case]:
    """Cases that fit the document and cases that break it (which must be refused with a
    documented 4xx), each also with every real id for a path parameter (a generated id only
    ever finds 404)."""
    names = [name for name in fixed if f"{{{name}}}" in operation.path]
    given_ids = [dict(zip(names, values, strict=True)) for values in
                 itertools.product(*(fixed[name] for name in names))] if names else []  # fmt: skip
    return st.one_of(
        operation.as_strategy(generation_mode=mode, path_parameters=ids)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for ids in [None, *given_ids]
    )


def fuzz(
    operation: schemathesis.APIOperation,
    strategy: st.SearchStrategy[schemathesis.Case],
    *,
    base_url: str,
    headers: dict[str, str],
    session: requests.Session,
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,  # a live server's latency is not the generated data's fault
        database=None,  # nothing to replay: the server's state differs on every run
        suppress_health_check=SCHEMA_HEALTH_CHECKS,
    )
    @given(case=strategy, fields=body_fields(operation.path))
    def run(case: schemathesis.Case, fields: dict[str, Any]) -> None:
        if isinstance(case.body, dict):
            case.body.update(fields)
        case.call_and_validate(
            base_url=base_url,
            session=session,
            headers=headers,
            checks=CHECKS,
            additional_checks=[ledger_lines],
            timeout=30,
        )

    run()


def fuzz_all(
    schema: Any, *, base_url: str, key: str, fixed: dict[str, list[str]]
) -> dict[str, str]:
    """Every operation in turn; the failures, by operation."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    failures: dict[str, str] = {}
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            headers = {"Authorization": f"Bearer {key}"}
            if operation.path == "/v1/messages":
                headers = {"x-api-key": key}  # as Anthropic's SDKs send it
            elif operation.path.startswith("/admin/"):
                headers = admin
            try:
                fuzz(operation, strategies(operation, fixed), base_url=base_url,
                     headers=headers, session=session)  # fmt: skip
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis: a group of failures
                failures[operation.label] = str(exc)
    return failures


async def metered_request(gateway: Gateway, key: str) -> str:
    async with gateway.http.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
    ) as r:
        assert r.status == 200, await r.text()
        return r.headers["X-Request-Id"]


async def spare_keys(gateway: Gateway, account: str, count: int) -> list[str]:
    """Keys that ``DELETE /admin/keys/{key_id}`` may revoke: not the run's own."""
    ids = []
    for _ in range(count):
        status, key = await gateway.admin("POST", f"/admin/accounts/{account}/keys", {})
        assert status == 201, key
        ids.append(key["id"])
    return ids


async def test_gateway_keeps_to_its_openapi_document(gateway: Gateway) -> None:
    _, key = await gateway.account(topup="100.00")
    operated, _ = await gateway.account(topup="50.00")  # what the admin operations act on
    fixed = {
        "id": [operated],
        "key_id": await spare_keys(gateway, operated, 2),
        "request_id": [await metered_request(gateway, key)],
        "receipt_number": ["1"],  # each account's top-up issued one
    }
    schema = schemathesis.openapi.from_dict(await document(gateway), config=schemathesis.Config())
    failures = await asyncio.to_thread(fuzz_all, schema, base_url=gateway.url, key=key, fixed=fixed)
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
