"""The mock's Anthropic Messages answers: the same JSON and SSE event sequence as Anthropic.

A stream is ``message_start`` (usage with ``output_tokens: 1``), ``content_block_start``,
``ping``, one ``content_block_delta`` per word, ``content_block_stop``, ``message_delta`` (the
final, cumulative usage) and ``message_stop``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.apis.tokens import PER_MESSAGE, TokenCounter
from gateway.upstream.mock_common import (
    SSE_HEADERS,
    MockAnswer,
    json_answer,
    last_user_text,
    named_event,
    reply_pieces,
    text_of,
)

CUMULATIVE_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def anthropic_error(status: int, kind: str, message: str) -> MockAnswer:
    return json_answer({"type": "error", "error": {"type": kind, "message": message}}, status)


def _input_tokens(payload: dict[str, Any], counter: TokenCounter, model: str) -> int:
    system = payload.get("system")
    total = counter.count(text_of(system), model)
    messages = payload.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            total += PER_MESSAGE + counter.count(text_of(message.get("content")), model)
    return total


def messages_answer(
    body: bytes, counter: TokenCounter, override: Mapping[str, Any] | None
) -> MockAnswer:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return anthropic_error(400, "invalid_request_error", "The request body is not valid JSON.")
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), str):
        return anthropic_error(400, "invalid_request_error", "model: Field required")
    model: str = payload["model"]
    max_tokens = payload.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        return anthropic_error(400, "invalid_request_error", "max_tokens: Field required")
    if "error" in model:
        return anthropic_error(500, "api_error", "The mock model failed, as its name asked.")

    pieces, cut = reply_pieces(last_user_text(payload.get("messages")), model, max_tokens,
                               counter)  # fmt: skip
    usage: dict[str, Any] = {
        "input_tokens": _input_tokens(payload, counter, model),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": sum(counter.count(p, model) for p in pieces),
        "service_tier": "standard",
    }
    usage.update(override or {})
    stop_reason = "max_tokens" if cut else "end_turn"
    message: dict[str, Any] = {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "".join(pieces)}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    if not payload.get("stream"):
        return json_answer(message)

    start_usage = {**usage, "output_tokens": 1}
    chunks = [
        named_event("message_start", {"type": "message_start", "message": {
            **message, "content": [], "stop_reason": None, "usage": start_usage}}),
        named_event("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "text", "text": ""}}),
        named_event("ping", {"type": "ping"}),
    ]  # fmt: skip
    for piece in pieces:
        chunks.append(named_event("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": piece}}))  # fmt: skip
    final_usage = {k: usage[k] for k in CUMULATIVE_FIELDS if k in usage}
    final_usage["output_tokens"] = usage["output_tokens"]
    chunks += [
        named_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        named_event("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                      "usage": final_usage}),
        named_event("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return MockAnswer(200, dict(SSE_HEADERS), chunks)
