"""Per-endpoint knowledge: how to read a request, bound its cost, and find its usage.

The proxy is endpoint-agnostic; each module here describes one API shape.
"""

from __future__ import annotations

from gateway.endpoints.base import Endpoint, ParsedRequest
from gateway.endpoints.openai import ChatCompletions, Completions, Embeddings


def default_endpoints() -> dict[str, Endpoint]:
    """Client path below /v1 -> endpoint."""
    endpoints: list[Endpoint] = [ChatCompletions(), Completions(), Embeddings()]
    return {e.path: e for e in endpoints}


__all__ = ["Endpoint", "ParsedRequest", "default_endpoints"]
