"""Token usage from OpenAI-shaped answers: a whole JSON body, or a stream of SSE events.

Upstream JSON is not trusted to be well formed: nothing here raises on odd values. A count that
is not a non-negative int (including ``true``, ``1.5`` and ``"12"``) reads as 0.
"""

from __future__ import annotations

import enum
from typing import Any

import orjson

from gateway.sse import SSEEvent
from gateway.tracking import TextTracker
from pricing.usage import Usage

__all__ = [
    "EventKind",
    "OpenAIStreamTracker",
    "usage_from_openai",
    "usage_from_openai_body",
]


def usage_from_openai(usage: object) -> Usage | None:
    """Read an OpenAI ``usage`` object (chat.completions, completions or embeddings).

    OpenAI counts cached prompt tokens inside ``prompt_tokens`` and reasoning tokens inside
    ``completion_tokens``; the cached ones move to ``cache_read_tokens``. Returns None when
    ``usage`` is not an object with an int ``prompt_tokens``.
    """
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    if type(prompt) is not int:
        return None
    prompt = max(prompt, 0)
    completion = _count(usage.get("completion_tokens"))
    cached = min(_count(_detail(usage, "prompt_tokens_details", "cached_tokens")), prompt)
    reasoning = min(
        _count(_detail(usage, "completion_tokens_details", "reasoning_tokens")), completion
    )
    return Usage(
        input_tokens=prompt - cached,
        output_tokens=completion,
        cache_read_tokens=cached,
        reasoning_tokens=reasoning,
    )


def usage_from_openai_body(body: bytes) -> tuple[Usage | None, str | None]:
    """Return the usage and the ``model`` of a non-streaming JSON response; (None, None) if bad."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    model = document.get("model")
    return usage_from_openai(document.get("usage")), model if isinstance(model, str) else None


class EventKind(enum.Enum):
    """What one event of an OpenAI stream is, as far as relaying and billing care."""

    CHUNK = "chunk"  # a completion chunk (``choices`` is a list)
    USAGE_ONLY = "usage_only"  # the extra chunk ``stream_options.include_usage`` adds
    DONE = "done"  # ``data: [DONE]``
    OTHER = "other"  # comments, events without data, errors, anything not a chunk


class OpenAIStreamTracker(TextTracker):
    """Follows a chat.completions or completions stream: usage, model and generated text.

    ``usage`` is the last non-null ``usage`` seen (None if the stream had none), ``model`` the
    first non-empty ``model``. ``text`` is everything generated: chat ``delta.content``,
    ``delta.reasoning_content``, ``delta.refusal`` and tool/function call arguments, or legacy
    completions ``text``. ``chunks`` counts the CHUNK events that had at least one choice with a
    ``delta`` (chat) or ``text`` (completions), including the role and finish chunks.
    """

    def __init__(self) -> None:
        super().__init__()
        self.model: str | None = None
        self.chunks = 0

    def snapshot(self) -> Any:
        return self.chunks

    def restore(self, state: Any) -> None:
        self.chunks = state

    def feed(self, event: SSEEvent) -> EventKind:
        """Classify ``event`` and record what it carries."""
        data = event.data
        if data is None:
            return EventKind.OTHER
        if data == "[DONE]":
            return EventKind.DONE
        if event.event == "error" or "{" not in data:
            return EventKind.OTHER
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return EventKind.OTHER
        if not isinstance(chunk, dict):
            return EventKind.OTHER

        raw_usage = chunk.get("usage")
        if raw_usage is not None:
            usage = usage_from_openai(raw_usage)
            if usage is not None:
                self.usage = usage
        if self.model is None:
            model = chunk.get("model")
            if isinstance(model, str) and model:
                self.model = model

        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return EventKind.OTHER
        if not choices and isinstance(raw_usage, dict):
            return EventKind.USAGE_ONLY
        if self._collect(choices):
            self.chunks += 1
        return EventKind.CHUNK

    def _collect(self, choices: list[Any]) -> bool:
        """Append the choices' generated text; True if any choice had a delta or text."""
        text = self._text
        added = 0
        carried = False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                carried = True
                # A delta holds one or two keys: walking them beats looking up five names.
                for key, value in delta.items():
                    if type(value) is str:
                        if value and key in _DELTA_TEXT:
                            text.append(value)
                            added += len(value)
                    elif key == "tool_calls" and isinstance(value, list):
                        for call in value:
                            if isinstance(call, dict):
                                added += _append_arguments(text, call.get("function"))
                    elif key == "function_call":
                        added += _append_arguments(text, value)
            else:
                value = choice.get("text")
                if isinstance(value, str):
                    carried = True
                    if value:
                        text.append(value)
                        added += len(value)
        self._text_length += added
        return carried


_DELTA_TEXT = frozenset({"content", "reasoning_content", "refusal"})


def _append_arguments(text: list[str], function: object) -> int:
    """Append a function call's arguments, if any; returns how many characters."""
    if isinstance(function, dict):
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            text.append(arguments)
            return len(arguments)
    return 0


def _detail(usage: dict[Any, Any], details: str, name: str) -> object:
    section = usage.get(details)
    return section.get(name) if isinstance(section, dict) else None


def _count(value: object) -> int:
    # bool is an int subclass, and ``true`` is not a token count.
    return value if type(value) is int and value >= 0 else 0
