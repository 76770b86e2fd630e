"""The mock's Responses API answers: the response object, and its stream of typed events.

A stream is ``response.created``, ``response.in_progress``, ``response.output_item.added``,
``response.content_part.added``, one ``response.output_text.delta`` per word,
``response.output_text.done``, ``response.content_part.done``, ``response.output_item.done``
and ``response.completed`` (``response.incomplete`` when ``max_output_tokens`` cut the reply).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

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


def _prompt(payload: dict[str, Any], counter: TokenCounter, model: str) -> tuple[int, str]:
    """(input tokens, the user's last words) of ``instructions`` and ``input``."""
    tokens = 0
    instructions = payload.get("instructions")
    if isinstance(instructions, str):
        tokens += counter.count(instructions, model)
    items = payload.get("input")
    if isinstance(items, str):
        return tokens + PER_MESSAGE + counter.count(items, model), items
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            tokens += PER_MESSAGE + counter.count(text_of(item.get("content")), model)
    return tokens, last_user_text(items)


def responses_answer(
    payload: dict[str, Any],
    counter: TokenCounter,
    created: int,
    override: Mapping[str, Any] | None,
) -> MockAnswer:
    model: str = payload["model"]
    prompt, echo = _prompt(payload, counter, model)
    limit = payload.get("max_output_tokens")
    pieces, cut = reply_pieces(echo, model, limit, counter)
    output = sum(counter.count(p, model) for p in pieces)
    usage: dict[str, Any] = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + output,
    }
    usage.update(override or {})
    text = "".join(pieces)
    rid, mid = "resp_" + uuid.uuid4().hex, "msg_" + uuid.uuid4().hex
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    item = {"id": mid, "type": "message", "status": "completed", "role": "assistant",
            "content": [part]}  # fmt: skip
    status = "incomplete" if cut else "completed"

    def response(state: str, items: list[Any], usage_value: Any) -> dict[str, Any]:
        return {
            "id": rid,
            "object": "response",
            "created_at": created,
            "status": state,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if state == "incomplete"
            else None,
            "instructions": payload.get("instructions"),
            "max_output_tokens": limit,
            "model": model,
            "output": items,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage_value,
            "user": None,
            "metadata": {},
        }  # fmt: skip

    if not payload.get("stream"):
        return json_answer(response(status, [item], usage))

    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": response("in_progress", [], None)}),
        ("response.in_progress", {"response": response("in_progress", [], None)}),
        ("response.output_item.added", {"output_index": 0, "item": {
            **item, "status": "in_progress", "content": []}}),
        ("response.content_part.added", {"item_id": mid, "output_index": 0, "content_index": 0,
                                         "part": {**part, "text": ""}}),
    ]  # fmt: skip
    where = {"item_id": mid, "output_index": 0, "content_index": 0}
    for piece in pieces:
        events.append(("response.output_text.delta", {**where, "delta": piece, "logprobs": []}))
    events += [
        ("response.output_text.done", {**where, "text": text, "logprobs": []}),
        ("response.content_part.done", {**where, "part": part}),
        ("response.output_item.done", {"output_index": 0, "item": item}),
        (f"response.{status}", {"response": response(status, [item], usage)}),
    ]
    chunks = [
        named_event(name, {"type": name, "sequence_number": i, **fields})
        for i, (name, fields) in enumerate(events)
    ]
    return MockAnswer(200, dict(SSE_HEADERS), chunks)
