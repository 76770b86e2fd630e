"""Every endpoint's request reader, on hostile input (hypothesis).

Whatever the body, ``Endpoint.parse`` answers with a parsed request or a 4xx ``GatewayError``:
no other exception, no 5xx. What it parsed has a hold the proxy can compute (``worst_case``
then ``compute_cost``, as ``Proxy._admit`` does): no exception but a 4xx refusal, never
negative, and never zero for a request that makes output; and the body the proxy would send
upstream can be built. The inputs: arbitrary bytes, arbitrary JSON, valid request shapes with
fields mutated (wrong types, huge and negative numbers, floats, deep nesting, unicode, control
characters), and multipart forms with broken boundaries, headers and uploads.
"""

from __future__ import annotations

from typing import Any

import pytest
import tiktoken
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway import errors
from gateway.apis import ParsedRequest, default_endpoints
from gateway.apis.tokens import FALLBACK_ENCODING, TokenCounter
from pricing import compute_cost, parse_pricing
from tests.support.request_strategies import (
    ALIASES,
    BOUNDARY,
    CONTROL,
    FORM_TYPE,
    JSON_VALUES,
    UPLOADS,
    VALID,
    dumps,
    forms,
    near_valid_bodies,
    nested,
    wav_bytes,
    with_raw_field,
)

ENDPOINTS = default_endpoints(ALIASES)
AUDIO = "/audio/transcriptions"
JSON_PATHS = sorted(path for path in ENDPOINTS if path != AUDIO)
ALL_PATHS = [*JSON_PATHS, AUDIO]

PRICES = parse_pricing(
    """
models:
  gpt-4o-mini: {input: 0.15, output: 0.60, cache_read: 0.075, max_output_tokens: 1000}
  gpt-uncapped: {input: 1.00, output: 2.00}
  gpt-flat: {per_request: 0.002}
  text-embedding-3-small: {input: 0.02}
  claude-x: {input: 3.00, output: 15.00, cache_read: 0.30, cache_write: 3.75,
             cache_write_1h: 6.00, max_output_tokens: 64000,
             tiers: [{above: 200, input: 6.00, output: 22.50, cache_read: 0.60,
                      cache_write: 7.50, cache_write_1h: 12.00}]}
  dall-e-3: {per_image: {"1024x1024": 0.04, "1024x1024/hd": 0.08}}
  whisper-1: {per_audio_minute: 0.006}
""",
    source="test_readers_properties",
)
PRICED_AS = {
    "/chat/completions": ("gpt-4o-mini", "gpt-uncapped", "gpt-flat"),
    "/completions": ("gpt-4o-mini", "gpt-uncapped", "gpt-flat"),
    "/responses": ("gpt-4o-mini", "gpt-uncapped"),
    "/messages": ("claude-x", "gpt-uncapped"),
    "/embeddings": ("text-embedding-3-small",),
    "/images/generations": ("dall-e-3",),
    AUDIO: ("whisper-1",),
}
NO_OUTPUT = {"/embeddings"}  # everything else makes output, so its hold is never 0
DEFAULT_OUTPUT = 4096


def offline_encoding(name: str) -> Any:
    return tiktoken.get_encoding(FALLBACK_ENCODING)


COUNTER = TokenCounter(loader=offline_encoding)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the properties --------------------------------------------------------------------------


def read_or_refuse(path: str, body: bytes, content_type: str) -> ParsedRequest | None:
    """The request, or None when it was refused with a 4xx (anything else fails the test)."""
    try:
        return ENDPOINTS[path].parse(body, content_type)
    except errors.GatewayError as exc:
        assert 400 <= exc.status < 500, (exc.status, exc.message)
        return None


def check_admissible(path: str, req: ParsedRequest) -> None:
    """What ``Proxy._admit`` and ``_forward`` do with a parsed request cannot fail but with
    a 4xx, and a request that makes output is never held at nothing."""
    endpoint = ENDPOINTS[path]
    assert isinstance(req.model, str) and req.model
    assert req.n >= 1
    endpoint.upstream_body(req)
    for name in PRICED_AS[path]:
        price = PRICES.lookup(name)
        assert price is not None and endpoint.can_bill(price)
        try:
            worst = endpoint.worst_case(req, price, COUNTER, DEFAULT_OUTPUT)
        except errors.GatewayError as exc:  # e.g. an image size with no price, too deep a prompt
            assert 400 <= exc.status < 500, (exc.status, exc.message)
            continue
        hold = compute_cost(worst, price)
        assert hold >= 0
        if path not in NO_OUTPUT:
            assert hold > 0, (name, worst)


def check(path: str, body: bytes, content_type: str = "application/json") -> ParsedRequest | None:
    req = read_or_refuse(path, body, content_type)
    if req is not None:
        check_admissible(path, req)
    return req


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_PATHS)
@PROPERTY
@given(
    body=st.binary(max_size=512), content_type=st.sampled_from(["application/json", FORM_TYPE, ""])
)
@example(body=with_raw_field({"model": "alias-chat", "prompt": "x"}, "x", nested(300, "list")),
         content_type="application/json")  # fmt: skip
def test_any_bytes_are_read_or_refused(path: str, body: bytes, content_type: str) -> None:
    check(path, body, content_type)


@pytest.mark.parametrize("path", ALL_PATHS)
@PROPERTY
@given(value=JSON_VALUES, ascii_only=st.booleans())
def test_any_json_is_read_or_refused(path: str, value: Any, ascii_only: bool) -> None:
    check(path, dumps(value, ascii_only), FORM_TYPE if path == AUDIO else "application/json")


@pytest.mark.parametrize("path", JSON_PATHS)
@PROPERTY
@given(data=st.data())
def test_valid_shapes_are_read_and_held(path: str, data: st.DataObject) -> None:
    body = dumps(data.draw(VALID[path]), ascii_only=data.draw(st.booleans()))
    assert check(path, body) is not None, body


@pytest.mark.parametrize("path", JSON_PATHS)
@PROPERTY
@given(data=st.data())
def test_mutated_shapes_are_read_or_refused(path: str, data: st.DataObject) -> None:
    check(path, data.draw(near_valid_bodies(path)))


# Found by these tests: JSON that orjson reads (up to 1023 levels) but cannot write back (254)
# nor ``str()`` walk (Python's recursion limit) failed as 500s, not 400s.
@pytest.mark.parametrize("path", JSON_PATHS)
@pytest.mark.parametrize("field", ["tools", "metadata", "messages"])
@pytest.mark.parametrize("depth", [200, 255, 300, 1000, 1023])
def test_deep_nesting_is_read_or_refused(path: str, field: str, depth: int) -> None:
    valid = {"model": "alias-chat", "max_tokens": 5, "prompt": "x", "input": "x",
             "messages": [{"role": "user", "content": "x"}]}  # fmt: skip
    if path == "/images/generations":
        valid = {"prompt": "x"}  # its defaults are written into the body
    check(path, with_raw_field(valid, field, nested(depth, "list")))


@PROPERTY
@given(form=forms())
@example(form=(b"", "multipart/form-data; boundary*=idna''x"))
@example(
    form=(
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename*=idna''a\r\n"
        f"\r\nxx\r\n--{BOUNDARY}--\r\n".encode(),
        FORM_TYPE,
    )
)
def test_forms_are_read_or_refused(form: tuple[bytes, str]) -> None:
    check(AUDIO, *form)


@PROPERTY
@given(upload=UPLOADS, model=st.sampled_from(["whisper-1", "alias-ears"]))
@example(upload=b"", model="whisper-1")  # were held at 0: a hold of one second at least now
@example(upload=wav_bytes(0), model="whisper-1")
def test_well_formed_forms_with_any_upload_are_read_and_held(upload: bytes, model: str) -> None:
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        ).encode()
        + upload
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    req = check(AUDIO, body, FORM_TYPE)
    assert req is not None and req.model == "whisper-1"


def with_model(path: str, model: str) -> tuple[bytes, str]:
    if path == AUDIO:
        body = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n'.encode()
            + model.encode("utf-8", "surrogatepass")
            + f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="a.wav"\r\n\r\nxx\r\n--{BOUNDARY}--\r\n'.encode()
        )
        return body, FORM_TYPE
    payload = {"model": model, "max_tokens": 5, "prompt": "x", "input": "x",
               "messages": [{"role": "user", "content": "x"}]}  # fmt: skip
    return dumps(payload, ascii_only=False), "application/json"


@pytest.mark.parametrize("path", ALL_PATHS)
@PROPERTY
@given(
    prefix=st.sampled_from(["", "gpt-4o-mini", "whisper-1"]),
    control=CONTROL,
    suffix=st.sampled_from(["", "x", "\r\nX-Injected: 1"]),
)
def test_model_names_with_control_characters_are_refused(
    path: str, prefix: str, control: str, suffix: str
) -> None:
    body, content_type = with_model(path, prefix + control + suffix)
    with pytest.raises(errors.InvalidRequest):
        ENDPOINTS[path].parse(body, content_type)
