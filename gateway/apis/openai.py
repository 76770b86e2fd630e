"""OpenAI's chat completions, legacy completions and embeddings."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.apis.base import Endpoint, ParsedRequest, StreamTracker, positive_int
from gateway.apis.openai_stream import OpenAIStreamTracker
from gateway.apis.openai_usage import usage_from_openai_body
from gateway.apis.tokens import TokenCounter
from gateway.apis.tracking import EventKind, KeptBudget
from pricing import ModelPrice, Usage

USAGE_NULL_SUFFIX = b',"usage":null}'
USAGE_NULL_BLOCK_END = USAGE_NULL_SUFFIX + b"\n\n"


class ChatCompletions(Endpoint):
    path = "/chat/completions"
    plain_runs = True

    def upstream_body(self, req: ParsedRequest) -> tuple[bytes, bool]:
        """Streams always ask for usage; the client's own choice is remembered."""
        if not req.stream:
            return req.body, True
        options = req.payload.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            return req.body, True
        forced = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return orjson.dumps({**req.payload, "stream_options": forced}), False

    def usage_from_body(self, req: ParsedRequest, data: bytes) -> Usage | None:
        return usage_from_openai_body(data)[0] if data[:1] == b"{" else None

    def text_from_body(self, data: bytes) -> str:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return ""
        parts: list[str] = []
        choices: Any = doc.get("choices", []) if isinstance(doc, dict) else []
        for choice in choices if isinstance(choices, list) else []:
            if isinstance(choice, dict):
                message = choice.get("message")
                if isinstance(message, dict) and isinstance(message.get("content"), str):
                    parts.append(message["content"])
                elif isinstance(choice.get("text"), str):
                    parts.append(choice["text"])
        return "".join(parts)

    def new_tracker(self, budget: KeptBudget | None = None) -> StreamTracker:
        return OpenAIStreamTracker(budget)

    def rewrite_event(self, raw: bytes, kind: EventKind, strip_usage: bool) -> bytes:
        """Undo what forcing ``include_usage`` added to an ordinary chunk: ``"usage":null``."""
        if not strip_usage or kind is not EventKind.CHUNK:
            return raw
        end = raw.rfind(b"}")
        start = end - len(USAGE_NULL_SUFFIX) + 1
        if start > 0 and raw[start : end + 1] == USAGE_NULL_SUFFIX:
            return raw[:start] + b"}" + raw[end + 1 :]
        return raw

    def rewrite_plain(self, run: bytes, strip_usage: bool) -> bytes:
        # Each block of a plain run ends with "}\n\n": its last "}" is the one rewrite_event
        # looks at, so one replace over the run does what it does to each chunk.
        return run.replace(USAGE_NULL_BLOCK_END, b"}\n\n") if strip_usage else run


class Completions(ChatCompletions):
    path = "/completions"

    def completions(self, req: ParsedRequest) -> int:
        """One per prompt of a prompt array, times ``max(n, best_of)``: ``best_of`` makes the
        provider generate (and bill) that many even though it returns ``n``."""
        prompt = req.payload.get("prompt")
        prompts = 1
        if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
            prompts = len(prompt)  # a list of strings or of token arrays: one each
        best_of = positive_int(req.payload.get("best_of")) or 1
        return prompts * max(req.n, best_of)


class Embeddings(ChatCompletions):
    path = "/embeddings"
    streams = False

    def worst_case(
        self, req: ParsedRequest, price: ModelPrice, counter: TokenCounter, default_output: int
    ) -> Usage:
        return Usage(input_tokens=counter.estimate_prompt(req.payload, req.model))

    def estimate(self, req: ParsedRequest, text: str, counter: TokenCounter) -> Usage:
        return Usage(input_tokens=counter.estimate_prompt(req.payload, req.model, safety=False))
