"""The built-in mock provider: answers like OpenAI and Anthropic, from the request alone.

It serves every endpoint the gateway meters: chat completions, completions and embeddings
(here), the Responses API (``mock_responses``), Anthropic's Messages (``mock_anthropic``), image
generation and audio transcription (``mock_media``). Behaviour follows the model name (as
TensorZero's dummy provider does):
  ``*error*``  answers 500 with an error body;
  ``*slow*``   waits 50 ms between streamed chunks.
Anything else answers normally: the reply echoes the last user message, usage is counted with
tiktoken, the output limit truncates, streams send one chunk per word. The answer builders are
pure so that the test suite's fake upstream serves the very same bytes over real HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from gateway.apis.tokens import PER_MESSAGE, PER_REPLY, TokenCounter
from gateway.upstream.mock_anthropic import messages_answer
from gateway.upstream.mock_common import (
    JSON_HEADERS,
    SSE_HEADERS,
    MockAnswer,
    error_answer,
    last_user_text,
    reply_pieces,
)
from gateway.upstream.mock_media import images_answer, transcription_answer
from gateway.upstream.mock_responses import responses_answer
from gateway.upstream.provider import UpstreamRequest

__all__ = ["MockAnswer", "MockProvider", "answer", "error_answer"]


def answer(
    path: str,
    body: bytes,
    counter: TokenCounter,
    *,
    content_type: str = "application/json",
    now: int | None = None,
    usage_override: Mapping[str, Any] | None = None,
) -> MockAnswer:
    """The whole answer to one request, as bytes."""
    created = int(time.time()) if now is None else now
    if path == "/audio/transcriptions":
        return transcription_answer(body, content_type, usage_override)
    if path == "/messages":
        return messages_answer(body, counter, usage_override)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return error_answer(
            400, "We could not parse the JSON body of your request.", "invalid_json"
        )
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), str):
        return error_answer(400, "you must provide a model parameter", "missing_model")
    model = payload["model"]
    if "error" in model:
        return error_answer(500, "The mock model failed, as its name asked.", "server_error")
    if path == "/chat/completions":
        return _text_answer(payload, counter, created, usage_override, chat=True)
    if path == "/completions":
        return _text_answer(payload, counter, created, usage_override, chat=False)
    if path == "/embeddings":
        return _embeddings(payload, counter, usage_override)
    if path == "/responses":
        return responses_answer(payload, counter, created, usage_override)
    if path == "/images/generations":
        return images_answer(payload, created)
    return error_answer(404, f"Unknown path {path} for the mock provider.", "unknown_url")


def _prompt_tokens(payload: dict[str, Any], counter: TokenCounter, model: str) -> int:
    messages = payload.get("messages")
    if isinstance(messages, list):
        total = PER_REPLY
        for message in messages:
            total += PER_MESSAGE
            if isinstance(message, dict):
                content = message.get("content")
                if isinstance(content, str):
                    total += counter.count(content, model)
                elif isinstance(content, list):
                    for part in content:
                        if isinstance(part, dict) and isinstance(part.get("text"), str):
                            total += counter.count(part["text"], model)
        return total
    prompt = payload.get("prompt")
    return counter.count(prompt, model) if isinstance(prompt, str) else 0


def _reply_words(
    payload: dict[str, Any], counter: TokenCounter, model: str
) -> tuple[list[str], str]:
    echo = last_user_text(payload.get("messages"))
    prompt = payload.get("prompt")
    if not echo and isinstance(prompt, str):
        echo = prompt
    limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
    pieces, cut = reply_pieces(echo, model, limit, counter)
    return pieces, "length" if cut else "stop"


def _usage(
    prompt: int, completion: int, cached: int, override: Mapping[str, Any] | None
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    return {**usage, **override} if override else usage


def _text_answer(
    payload: dict[str, Any],
    counter: TokenCounter,
    created: int,
    override: Mapping[str, Any] | None,
    *,
    chat: bool,
) -> MockAnswer:
    model: str = payload["model"]
    n = payload.get("n", 1)
    n = n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 8 else 1
    pieces, finish = _reply_words(payload, counter, model)
    prompt = _prompt_tokens(payload, counter, model)
    completion = sum(counter.count(p, model) for p in pieces) * n
    # Like OpenAI: a cache hit needs 1024+ tokens and counts in 128-token steps.
    cached = (
        (prompt // 128) * 128 - 128 if payload.get("prompt_cache_key") and prompt >= 1152 else 0
    )
    usage = _usage(prompt, completion, cached, override)
    rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    text = "".join(pieces)
    if not payload.get("stream"):
        choices: list[dict[str, Any]]
        if chat:
            choices = [
                {
                    "index": i,
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish,
                }
                for i in range(n)
            ]
        else:
            choices = [
                {"index": i, "text": text, "logprobs": None, "finish_reason": finish}
                for i in range(n)
            ]
        body = {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": usage,
            "system_fingerprint": "fp_mock",
        }
        return MockAnswer(200, dict(JSON_HEADERS), [orjson.dumps(body)])

    options = payload.get("stream_options")
    with_usage = isinstance(options, dict) and options.get("include_usage") is True
    obj = "chat.completion.chunk" if chat else "text_completion"

    def event(choices: list[dict[str, Any]], usage_value: Any = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": rid,
            "object": obj,
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": choices,
        }
        if with_usage:
            chunk["usage"] = usage_value
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def delta(
        i: int, content: str | None, finish_reason: str | None, role: bool = False
    ) -> dict[str, Any]:
        if not chat:
            return {
                "index": i,
                "text": content or "",
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        d: dict[str, Any] = {}
        if role:
            d = {"role": "assistant", "content": "", "refusal": None}
        elif content is not None:
            d = {"content": content}
        return {"index": i, "delta": d, "logprobs": None, "finish_reason": finish_reason}

    chunks: list[bytes] = []
    if chat:
        chunks.append(event([delta(i, None, None, role=True) for i in range(n)]))
    for piece in pieces:
        chunks.append(event([delta(i, piece, None) for i in range(n)]))
    chunks.append(event([delta(i, None, finish) for i in range(n)]))
    if with_usage:
        chunks.append(event([], usage))
    chunks.append(b"data: [DONE]\n\n")
    return MockAnswer(200, dict(SSE_HEADERS), chunks)


def _embeddings(
    payload: dict[str, Any], counter: TokenCounter, override: Mapping[str, Any] | None
) -> MockAnswer:
    model: str = payload["model"]
    raw = payload.get("input")
    inputs: list[Any] = (
        raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
    )
    if any(not isinstance(i, str | list) for i in inputs):
        return error_answer(
            400, "'input' must be a string or an array of strings or tokens", "invalid_input"
        )
    dims = payload.get("dimensions")
    dims = dims if isinstance(dims, int) and not isinstance(dims, bool) and 0 < dims <= 3072 else 8
    as_base64 = payload.get("encoding_format") == "base64"
    data = []
    prompt = 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(map(str, item))
        prompt += counter.count(item, model) if isinstance(item, str) else len(item)
        seed = hashlib.sha256(text.encode()).digest()
        vector = [(seed[i % 32] - 128) / 128.0 for i in range(dims)]
        embedding: Any = vector
        if as_base64:
            embedding = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage: dict[str, Any] = {"prompt_tokens": prompt, "total_tokens": prompt}
    if override:
        usage.update(override)
    body = {"object": "list", "data": data, "model": model, "usage": usage}
    return MockAnswer(200, dict(JSON_HEADERS), [orjson.dumps(body)])


class MockResponse:
    def __init__(self, result: MockAnswer, delay: float) -> None:
        self.status = result.status
        self.headers: Mapping[str, str] = result.headers
        self._chunks = result.chunks
        self._delay = delay

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            await asyncio.sleep(self._delay)
            yield chunk

    async def read(self) -> bytes:
        return b"".join(self._chunks)

    def close(self) -> None:
        self._chunks = []


class MockProvider:
    kind = "mock"

    def __init__(self, name: str, counter: TokenCounter) -> None:
        self.name = name
        self._counter = counter

    async def send(self, request: UpstreamRequest) -> MockResponse:
        content_type = next(
            (v for k, v in request.headers.items() if k.lower() == "content-type"), ""
        )
        result = answer(request.path, request.body, self._counter, content_type=content_type)
        delay = 0.05 if b"slow" in request.body[:4096] and len(result.chunks) > 1 else 0.0
        return MockResponse(result, delay)
