"""Per-endpoint knowledge: how to read a request, bound its cost, and find its usage.

The proxy is endpoint-agnostic; each module here describes one API shape.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.apis.anthropic import Messages
from gateway.apis.audio import Transcriptions
from gateway.apis.base import Endpoint, ParsedRequest
from gateway.apis.images import ImageGenerations
from gateway.apis.openai import ChatCompletions, Completions, Embeddings
from gateway.apis.responses import Responses


def default_endpoints(aliases: Mapping[str, str] | None = None) -> dict[str, Endpoint]:
    """Client path below /v1 -> endpoint; ``aliases`` maps a model name clients may use to
    the model it stands for."""
    kinds: list[type[Endpoint]] = [
        ChatCompletions,
        Completions,
        Embeddings,
        Responses,
        Messages,
        ImageGenerations,
        Transcriptions,
    ]
    return {kind.path: kind(aliases) for kind in kinds}


__all__ = ["Endpoint", "ParsedRequest", "default_endpoints"]
