"""Token usage from Anthropic's Messages API, plain and streamed. Pure.

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

from gateway.apis.tracking import EventKind, TextTracker, count, event_json
from gateway.apis.usage_checks import bad_counts, read_count
from gateway.codecs.sse import SSEEvent
from pricing import Usage

USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cache_creation",
    "output_tokens_details",
)
COUNT_FIELDS = (
    "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
    "cache_creation.ephemeral_5m_input_tokens", "cache_creation.ephemeral_1h_input_tokens",
    "output_tokens_details.thinking_tokens",
)  # fmt: skip


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
    if read_count(usage.get("input_tokens")) is None or bad_counts(usage, COUNT_FIELDS):
        return None
    output = count(usage.get("output_tokens"))
    breakdown = usage.get("cache_creation")
    breakdown = breakdown if isinstance(breakdown, dict) else {}
    five_min = count(breakdown.get("ephemeral_5m_input_tokens"))
    one_hour = count(breakdown.get("ephemeral_1h_input_tokens"))
    total = usage.get("cache_creation_input_tokens")
    written = count(total) if total is not None else five_min + one_hour
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


def block_text(block: Mapping[str, Any]) -> list[object]:
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
            for value in block_text(block) if isinstance(block, dict) else []:
                self.append(value)
        elif kind == "content_block_delta":
            delta = doc.get("delta")
            for value in block_text(delta) if isinstance(delta, dict) else []:
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
        self.unreadable_usage = dict(self._fields) if self.usage is None else None
