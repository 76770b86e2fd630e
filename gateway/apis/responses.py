"""OpenAI's Responses API (``POST /v1/responses``), plain and streamed.

The Responses API always reports usage, on the response object: ``input_tokens`` *includes*
``input_tokens_details.cached_tokens`` (and ``cache_write_tokens``, where reported), and
``output_tokens`` includes ``output_tokens_details.reasoning_tokens``. A stream ends with one of
``response.completed``, ``response.incomplete`` or ``response.failed``, whose ``response``
carries that usage; each of them is the DONE event (the cost comment goes right before it).
"""

from __future__ import annotations

from typing import Any

from gateway import errors
from gateway.apis.base import Endpoint, ParsedRequest, StreamTracker
from gateway.apis.tracking import EventKind, KeptBudget, TextTracker, body_json, count, event_json
from gateway.apis.usage_checks import bad_counts, read_count
from gateway.codecs.sse import SSEEvent
from pricing import Usage

COUNT_FIELDS = ("input_tokens", "output_tokens", "input_tokens_details.cached_tokens",
                "input_tokens_details.cache_write_tokens",
                "output_tokens_details.reasoning_tokens")  # fmt: skip

TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
TEXT_DELTA_EVENTS = frozenset({
    "response.output_text.delta", "response.refusal.delta",
    "response.function_call_arguments.delta", "response.custom_tool_call_input.delta",
    "response.reasoning_text.delta", "response.reasoning_summary_text.delta",
})  # fmt: skip


def usage_from_responses(usage: object) -> Usage | None:
    """Read a Responses ``usage`` object; None unless ``input_tokens`` is a count and the
    report is readable (openai_usage says what that means)."""
    if (not isinstance(usage, dict) or read_count(usage.get("input_tokens")) is None
            or bad_counts(usage, COUNT_FIELDS)):  # fmt: skip
        return None
    prompt = count(usage["input_tokens"])
    output = count(usage.get("output_tokens"))
    details = usage.get("input_tokens_details")
    details = details if isinstance(details, dict) else {}
    cached = count(details.get("cached_tokens"))
    if cached > prompt:
        return None
    written = min(count(details.get("cache_write_tokens")), prompt - cached)
    out_details = usage.get("output_tokens_details")
    reasoning = count(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0
    return Usage(
        input_tokens=prompt - cached - written,
        output_tokens=output,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=min(reasoning, output),
    )


def _output_text(output: object) -> str:
    parts: list[str] = []
    for item in output if isinstance(output, list) else []:
        if not isinstance(item, dict):
            continue
        for key in ("arguments", "input"):
            if isinstance(item.get(key), str):
                parts.append(item[key])
        for section in ("content", "summary"):
            blocks: Any = item.get(section)
            for block in blocks if isinstance(blocks, list) else []:
                if isinstance(block, dict):
                    for key in ("text", "refusal"):
                        if isinstance(block.get(key), str):
                            parts.append(block[key])
    return "".join(parts)


class ResponsesStreamTracker(TextTracker):
    """Follows a Responses stream: usage and text; the terminal response event is DONE."""

    def feed(self, event: SSEEvent) -> EventKind:
        doc = event_json(event)
        if doc is None:
            return EventKind.OTHER
        kind = doc.get("type", event.event)
        if kind in TERMINAL_EVENTS:
            response = doc.get("response")
            if isinstance(response, dict):
                usage = usage_from_responses(response.get("usage"))
                if usage is not None:
                    self.usage = usage
                elif response.get("usage") is not None:
                    self.unreadable_usage = response.get("usage")
            return EventKind.DONE
        if kind in TEXT_DELTA_EVENTS:
            self.append(doc.get("delta"))
        elif kind == "error" or not isinstance(kind, str):
            return EventKind.OTHER
        return EventKind.CHUNK


class Responses(Endpoint):
    path = "/responses"
    max_tokens_fields = ("max_output_tokens",)

    def read(self, body: bytes, content_type: str) -> ParsedRequest:
        req = super().read(body, content_type)
        req.n = 1
        if req.payload.get("background"):
            # Its usage would only appear when the client polls the response later, past the
            # gateway: it could not be metered.
            raise errors.InvalidRequest(
                "Background responses cannot be metered by this gateway; "
                "send the request without 'background'.",
                param="background",
            )
        return req

    def usage_from_body(self, req: ParsedRequest, data: bytes) -> Usage | None:
        doc = body_json(data)
        return usage_from_responses(doc.get("usage")) if doc is not None else None

    def text_from_body(self, data: bytes) -> str:
        doc = body_json(data)
        return _output_text(doc.get("output")) if doc is not None else ""

    def new_tracker(self, budget: KeptBudget | None = None) -> StreamTracker:
        return ResponsesStreamTracker()
