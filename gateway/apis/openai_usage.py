"""Token usage from OpenAI-shaped answers (chat.completions, completions, embeddings). Pure.

Upstream JSON is not trusted to be well formed: nothing here raises on odd values. A report
with a count that is not a non-negative whole number (``true``, ``1.5``, ``"12"``, ``-3``), or
with more cached tokens than prompt tokens, is unreadable (None: the request is estimated and
the report recorded as an anomaly); ``50.0`` reads as 50.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.apis.usage_checks import optional_count, read_count
from pricing.usage import Usage

__all__ = ["usage_from_openai", "usage_from_openai_body"]


def usage_from_openai(usage: object) -> Usage | None:
    """Read an OpenAI ``usage`` object (chat.completions, completions or embeddings).

    OpenAI counts cached prompt tokens inside ``prompt_tokens`` and reasoning tokens inside
    ``completion_tokens``; the cached ones move to ``cache_read_tokens``. Returns None when
    ``usage`` is not an object with a count in ``prompt_tokens``, or is unreadable.
    """
    if not isinstance(usage, dict):
        return None
    prompt = read_count(usage.get("prompt_tokens"))
    completion = optional_count(usage.get("completion_tokens"))
    cached = optional_count(_detail(usage, "prompt_tokens_details", "cached_tokens"))
    reasoning = optional_count(_detail(usage, "completion_tokens_details", "reasoning_tokens"))
    if prompt is None or min(completion, cached, reasoning) < 0 or cached > prompt:
        return None
    reasoning = min(reasoning, completion)
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
