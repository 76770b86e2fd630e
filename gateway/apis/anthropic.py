"""Anthropic's Messages API (``POST /v1/messages``), plain and streamed.

Anthropic reports ``input_tokens`` *without* the cached prompt: cache reads
(``cache_read_input_tokens``) and cache writes (``cache_creation_input_tokens``, split by the
``cache_creation`` object into 5-minute and 1-hour writes) are separate buckets, which is exactly
how ``Usage`` counts. In a stream, ``message_start`` carries the first
usage and each ``message_delta`` carries *cumulative* counts for the fields it names, so the
last value of each field wins and nothing is ever added up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway import errors
from gateway.apis.base import Endpoint, ParsedRequest, StreamTracker, positive_int
from gateway.apis.openai_usage import EventKind
from gateway.apis.tokens import TokenCounter
from gateway.apis.tracking import KeptBudget, TextTracker, body_json, count, event_json
from gateway.codecs.sse import SSEEvent
from pricing import ModelPrice, Usage

USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cache_creation",
    "output_tokens_details",
)


@dataclass(frozen=True, slots=True)
class AnthropicUsage:
    """Anthropic's buckets as reported, before they are mapped onto ``Usage``."""

    input_tokens: int
    output_tokens: int
    cache_read: int
    cache_write_5m: int
    cache_write_1h: int
    thinking: int

    def to_usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write_5m,
            cache_write_1h_tokens=self.cache_write_1h,
            reasoning_tokens=self.thinking,
        )


def read_anthropic_usage(usage: Mapping[str, Any]) -> AnthropicUsage | None:
    """Read an Anthropic ``usage`` object; None unless ``input_tokens`` is an int.

    ``cache_creation_input_tokens`` is the total written; the ``cache_creation`` breakdown
    (``ephemeral_5m_input_tokens``, ``ephemeral_1h_input_tokens``) only splits it by duration.
    """
    if type(usage.get("input_tokens")) is not int:
        return None
    output = count(usage.get("output_tokens"))
    breakdown = usage.get("cache_creation")
    breakdown = breakdown if isinstance(breakdown, dict) else {}
    five_min = count(breakdown.get("ephemeral_5m_input_tokens"))
    one_hour = count(breakdown.get("ephemeral_1h_input_tokens"))
    total = usage.get("cache_creation_input_tokens")
    written = count(total) if type(total) is int else five_min + one_hour
    one_hour = min(one_hour, written)
    details = usage.get("output_tokens_details")
    thinking = count(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    return AnthropicUsage(
        input_tokens=count(usage["input_tokens"]),
        output_tokens=output,
        cache_read=count(usage.get("cache_read_input_tokens")),
        cache_write_5m=written - one_hour,
        cache_write_1h=one_hour,
        thinking=min(thinking, output),
    )


def usage_from_anthropic(usage: object) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    read = read_anthropic_usage(usage)
    return read.to_usage() if read is not None else None


def _block_text(block: Mapping[str, Any]) -> list[object]:
    """The generated text of one content block or delta (text, thinking, tool input)."""
    return [block.get(k) for k in ("text", "thinking", "partial_json")]


class AnthropicStreamTracker(TextTracker):
    """Follows a Messages stream: ``message_stop`` is DONE; usage is the last value per field."""

    def __init__(self) -> None:
        super().__init__()
        self._fields: dict[str, Any] = {}

    def snapshot(self) -> dict[str, Any]:
        return dict(self._fields)

    def restore(self, state: Any) -> None:
        self._fields = dict(state)

    def feed(self, event: SSEEvent) -> EventKind:
        doc = event_json(event)
        if doc is None:
            return EventKind.OTHER
        kind = doc.get("type", event.event)
        if kind == "message_stop":
            return EventKind.DONE
        if kind == "message_start":
            message = doc.get("message")
            self._take(message.get("usage") if isinstance(message, dict) else None)
        elif kind == "message_delta":
            self._take(doc.get("usage"))
        elif kind == "content_block_start":
            block = doc.get("content_block")
            for value in _block_text(block) if isinstance(block, dict) else []:
                self.append(value)
        elif kind == "content_block_delta":
            delta = doc.get("delta")
            for value in _block_text(delta) if isinstance(delta, dict) else []:
                self.append(value)
        else:
            return EventKind.OTHER  # ping, error, and kinds added after this was written
        return EventKind.CHUNK

    def _take(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        for name in USAGE_FIELDS:
            if usage.get(name) is not None:  # absent or null: the earlier value stands
                self._fields[name] = usage[name]
        self.usage = usage_from_anthropic(self._fields)


class Messages(Endpoint):
    path = "/messages"
    max_tokens_fields = ("max_tokens",)

    def read(self, body: bytes, content_type: str) -> ParsedRequest:
        req = super().read(body, content_type)
        req.n = 1
        if positive_int(req.payload.get("max_tokens")) is None:
            # Anthropic requires it too; refusing here keeps the hold bounded.
            raise errors.InvalidRequest(
                "max_tokens: Field required (a positive integer).", param="max_tokens"
            )
        return req

    def worst_case(
        self, req: ParsedRequest, price: ModelPrice, counter: TokenCounter, default_output: int
    ) -> Usage:
        """``max_tokens`` plus the prompt, priced at the dearest bucket it may land in when it
        asks for caching (a cache write costs more than plain input, a 1-hour one more still)."""
        usage = super().worst_case(req, price, counter, default_output)
        if not _asks_for_cache(req.payload):
            return usage
        prompt, output = usage.input_tokens, usage.output_tokens
        tier = price.for_prompt(prompt)
        five_min = tier.cache_write if tier.cache_write is not None else tier.input or 0
        one_hour = tier.cache_write_1h if tier.cache_write_1h is not None else five_min
        buckets = [
            (tier.input or 0, Usage(input_tokens=prompt, output_tokens=output)),
            (five_min, Usage(cache_write_tokens=prompt, output_tokens=output)),
            (one_hour, Usage(cache_write_1h_tokens=prompt, output_tokens=output)),
        ]
        return max(buckets, key=lambda bucket: bucket[0])[1]

    def usage_from_body(self, req: ParsedRequest, data: bytes) -> Usage | None:
        doc = body_json(data)
        return usage_from_anthropic(doc.get("usage")) if doc is not None else None

    def text_from_body(self, data: bytes) -> str:
        doc = body_json(data)
        content = doc.get("content") if doc is not None else None
        parts: list[str] = []
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict):
                parts += [v for v in _block_text(block) if isinstance(v, str)]
                if block.get("type") == "tool_use" and "input" in block:
                    parts.append(str(block["input"]))
        return "".join(parts)

    def new_tracker(self, budget: KeptBudget | None = None) -> StreamTracker:
        return AnthropicStreamTracker()


def _asks_for_cache(value: object, depth: int = 0) -> bool:
    """Whether any block of the parsed request carries ``cache_control`` (escaped JSON keys
    included, which a byte search would miss)."""
    if depth > 64:
        return False
    if isinstance(value, dict):
        return "cache_control" in value or any(
            _asks_for_cache(v, depth + 1) for v in value.values()
        )
    if isinstance(value, list):
        return any(_asks_for_cache(v, depth + 1) for v in value)
    return False
