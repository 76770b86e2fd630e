"""Anthropic's Messages API (``POST /v1/messages``), plain and streamed: reading the request,
bounding its cost (``max_tokens`` is required, as Anthropic requires it; a prompt marked
``cache_control`` is held at its dearest cache price). Its usage: ``anthropic_usage``.
"""

from __future__ import annotations

from gateway import errors
from gateway.apis.anthropic_usage import AnthropicStreamTracker, block_text, usage_from_anthropic
from gateway.apis.base import Endpoint, ParsedRequest, StreamTracker, positive_int
from gateway.apis.tokens import TokenCounter
from gateway.apis.tracking import KeptBudget, body_json
from pricing import ModelPrice, Usage


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
                parts += [v for v in block_text(block) if isinstance(v, str)]
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
