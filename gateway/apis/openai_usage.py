"""Token usage from OpenAI-shaped answers (chat.completions, completions, embeddings). Pure.

Upstream JSON is not trusted to be well formed: nothing here raises on odd values. A count that
is not a non-negative int (including ``true``, ``1.5`` and ``"12"``) reads as 0.
"""

from __future__ import annotations

from typing import Any

import orjson

from pricing.usage import Usage

__all__ = ["usage_from_openai", "usage_from_openai_body"]


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


def _detail(usage: dict[Any, Any], details: str, name: str) -> object:
    section = usage.get(details)
    return section.get(name) if isinstance(section, dict) else None


def _count(value: object) -> int:
    # bool is an int subclass, and ``true`` is not a token count.
    return value if type(value) is int and value >= 0 else 0
