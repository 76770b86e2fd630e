"""Following an OpenAI chat.completions or completions stream: usage, model, generated text."""

from __future__ import annotations

import contextlib
from array import array
from typing import Any

import orjson

from gateway.apis.chunk_keeping import (
    B_USAGE,
    B_USAGE_NULL,
    CHOICES,
    USAGE,
    USAGE_NULL_END,
    all_keepable,
    chunk_datas,
    keepable_prefix,
    run_datas,
)
from gateway.apis.openai_usage import usage_from_openai
from gateway.apis.tracking import EventKind, KeptBudget, TextTracker, TrackerMark
from gateway.codecs.sse import PLAIN_FRAME, SSEEvent

__all__ = ["OpenAIStreamTracker"]


class OpenAIStreamTracker(TextTracker):
    """Follows a chat.completions or completions stream: usage, model and generated text.

    ``usage`` is the last non-null ``usage`` seen (None if the stream had none), ``model`` the
    first non-empty ``model``. ``text`` is everything generated: chat ``delta.content``,
    ``delta.reasoning_content``, ``delta.refusal`` and tool/function call arguments, or legacy
    completions ``text``. ``chunks`` counts the CHUNK events that had at least one choice with a
    ``delta`` (chat) or ``text`` (completions), including the role and finish chunks.

    The text is only needed when a stream ends without its usage (cut or broken), so an
    ordinary chunk, written as OpenAI writes it (``"choices":[``, and no ``"usage"`` or only
    a last ``"usage":null``), is kept unparsed until ``text`` or ``chunks`` is read, or until
    more than ``LAZY_LIMIT`` bytes (of the blocks they came in) wait at a ``mark`` (with a
    ``budget``: and the budget is tight, see ``KeptBudget``). Anything else is parsed at once,
    after the kept chunks, so the text stays in stream order. Marks count kept chunks, and
    parsing records where each one ended, so ``truncate`` cuts at the same place either way.
    """

    LAZY_LIMIT = 256 * 1024
    lazy = True  # False: parse every chunk at once (the reference the tests compare with)

    def __init__(self, budget: KeptBudget | None = None) -> None:
        super().__init__()
        self.budget = budget
        self.model: str | None = None
        self._chunks = 0
        # Chunks not parsed yet, in stream order: a chunk's data (str) kept by feed, or a run
        # of whole plain blocks (bytes, as they came) kept by feed_plain.
        self._kept: list[str | bytes] = []
        # The bytes each kept item came in (its events' raw blocks), and their sum: both paths
        # count the same blocks alike, so they parse what they kept at the same marks.
        self._kept_sizes: list[int] = []
        self._kept_size = 0
        self._lazy = 0  # chunks ever kept (parsed or not)
        # When self.usage came from a chunk read while others were kept: how many kept chunks
        # came before it. Parsing them must not leave an older usage in its place (a kept chunk
        # can hold a usage only behind a JSON escape, as "\u0075sage", from a broken upstream).
        self._usage_after: int | None = None
        # For each kept chunk parsed so far, in order: the text length and chunk count after it.
        self._text_ends = array("q")
        self._chunk_ends = array("q")

    @property
    def chunks(self) -> int:
        self._parse_kept()
        return self._chunks

    @property
    def text(self) -> str:
        self._parse_kept()
        return super().text

    def mark(self) -> TrackerMark:
        kept = self._kept_size
        if kept > self.LAZY_LIMIT and (self.budget is None or self.budget.tight(kept)):
            self._parse_kept()
        return super().mark()

    def release(self) -> None:
        budget, self.budget = self.budget, None
        if budget is not None:
            budget.used -= self._kept_size

    def _resize(self, size: int) -> None:
        """Set ``_kept_size``, and the budget's count with it."""
        if self.budget is not None:
            self.budget.used += size - self._kept_size
        self._kept_size = size

    def snapshot(self) -> Any:
        return self._chunks, self._lazy, len(self._text_ends), self._usage_after

    def truncate(self, mark: TrackerMark) -> None:
        chunks, lazy, parsed, usage_after = mark.state
        if lazy > parsed and len(self._text_ends) >= lazy:
            # Chunks kept at the mark have been parsed since: cut where the last one ended.
            text_length, chunks = self._text_ends[lazy - 1], self._chunk_ends[lazy - 1]
        else:
            text_length = mark.text_length
            if lazy > parsed:  # still kept: keep those from before the mark
                self._keep_first(lazy - len(self._text_ends))
        if len(self._text_ends) > lazy:
            del self._text_ends[lazy:]
            del self._chunk_ends[lazy:]
        if lazy <= len(self._text_ends):
            self._kept.clear()
            self._kept_sizes.clear()
            self._resize(0)
        self._lazy = lazy  # those parsed since the mark are cut, those kept since are gone
        if self._text_length > text_length:
            kept = TextTracker.text.fget(self)[:text_length]  # type: ignore[attr-defined]
            self._text[:] = [kept] if kept else []
            self._text_length = text_length
        self._chunks = chunks
        self.usage = mark.usage
        # Kept chunks are parsed all at once: those kept at the mark are either all still kept
        # (and counted as they were) or all parsed since.
        self._usage_after = usage_after if self._kept else None

    def feed(self, event: SSEEvent) -> EventKind:
        """Classify ``event`` and record what it carries."""
        data = event.data
        if data is None:
            return EventKind.OTHER
        if data == "[DONE]":
            return EventKind.DONE
        if event.event == "error" or "{" not in data:
            return EventKind.OTHER
        if (
            self.lazy
            and self.model is not None
            and data[0] == "{"
            and CHOICES in data
            and data.count(USAGE) == data.endswith(USAGE_NULL_END)
        ):
            self._kept.append(data)
            self._kept_sizes.append(len(event.raw))
            self._resize(self._kept_size + len(event.raw))
            self._lazy += 1
            return EventKind.CHUNK
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return EventKind.OTHER
        if not isinstance(chunk, dict):
            return EventKind.OTHER
        return self._read(chunk, parse_kept_first=True)

    def feed_plain(self, run: bytes, inners: list[bytes]) -> int:
        """Take events from the start of a plain run (``SSEDecoder.feed_plain``: its bytes and
        each block's inner part). Each one taken is an ordinary chunk, recorded exactly as
        ``feed`` would (kept unparsed once the model is known); taking stops at the first
        that ``feed`` would treat otherwise. Returns how many were taken: the others still go
        to ``feed``. What is kept is the run's bytes, split into chunks only if parsed."""
        if not self.lazy:
            return 0
        first = 0
        while self.model is None and first < len(inners):  # read at once, as feed does
            try:
                chunk = orjson.loads(b"{" + inners[first] + b"}")
            except orjson.JSONDecodeError:
                return first
            if not (isinstance(chunk, dict) and isinstance(chunk.get("choices"), list)):
                return first
            if not chunk["choices"] and isinstance(chunk.get("usage"), dict):
                return first  # the usage-only chunk
            self._read(chunk, parse_kept_first=True)
            first += 1
        rest = inners[first:] if first else inners
        start = sum(map(len, inners[:first])) + PLAIN_FRAME * first  # where rest starts in run
        end = len(run)
        if rest and rest[-1].find(B_USAGE) >= 0 and not rest[-1].endswith(B_USAGE_NULL):
            # Usually the stream's last read, ending with the usage chunk: leave that to feed.
            end -= len(rest[-1]) + PLAIN_FRAME
            rest = rest[:-1]
        if rest and not all_keepable(run, start, end, rest):
            rest = rest[: keepable_prefix(rest)]
            end = start + sum(map(len, rest)) + PLAIN_FRAME * len(rest)
        if rest:
            self._kept.append(run if end - start == len(run) else run[start:end])
            self._kept_sizes.append(end - start)
            self._resize(self._kept_size + end - start)
            self._lazy += len(rest)
        return first + len(rest)

    def _keep_first(self, count: int) -> None:
        """Forget all but the first ``count`` kept chunks. A mark is taken between two feeds,
        so it never falls inside a run that ``feed_plain`` kept."""
        items = 0
        while count > 0 and items < len(self._kept):
            item = self._kept[items]
            count -= 1 if isinstance(item, str) else len(run_datas(item))
            items += 1
        del self._kept[items:], self._kept_sizes[items:]
        self._resize(sum(self._kept_sizes))

    def _parse_kept(self) -> None:
        kept = self._kept
        if not kept:
            return
        self._kept = []
        self._kept_sizes = []
        self._resize(0)
        text_ends, chunk_ends = self._text_ends, self._chunk_ends
        usage_after, newer = self._usage_after, self.usage
        self._usage_after = None
        parsed = 0
        for i, data in enumerate(chunk_datas(kept)):
            if i == usage_after:  # the chunks before the one self.usage came from are done
                self.usage = newer
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                chunk = None
                if isinstance(data, bytes):  # as feed would have had it: invalid UTF-8 replaced
                    with contextlib.suppress(orjson.JSONDecodeError):
                        chunk = orjson.loads(data.decode("utf-8", "replace"))
            if isinstance(chunk, dict):
                self._read(chunk, parse_kept_first=False)
            text_ends.append(self._text_length)
            chunk_ends.append(self._chunks)
            parsed = i + 1
        if usage_after is not None and usage_after >= parsed:  # every kept chunk came before it
            self.usage = newer

    def _read(self, chunk: dict[str, Any], *, parse_kept_first: bool) -> EventKind:
        raw_usage = chunk.get("usage")
        if raw_usage is not None:
            usage = usage_from_openai(raw_usage)
            if usage is not None:
                self.usage = usage
                if parse_kept_first and self._kept:  # read after the kept chunks
                    self._usage_after = self._lazy - len(self._text_ends)
            else:
                self.unreadable_usage = raw_usage
        if self.model is None:
            model = chunk.get("model")
            if isinstance(model, str) and model:
                self.model = model

        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return EventKind.OTHER
        if not choices and isinstance(raw_usage, dict):
            return EventKind.USAGE_ONLY
        if parse_kept_first:  # its text goes after theirs
            self._parse_kept()
        if self._collect(choices):
            self._chunks += 1
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
