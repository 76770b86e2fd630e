"""What every stream tracker keeps: the generated text, the usage, and marks to rewind to."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.apis.usage_checks import read_count
from gateway.codecs.sse import SSEEvent
from pricing import Usage


class EventKind(enum.Enum):
    """What one event of any tracked stream is, as far as relaying and billing care."""

    CHUNK = "chunk"  # an event carrying generated output (an OpenAI chunk, a content delta)
    USAGE_ONLY = "usage_only"  # OpenAI's extra chunk that ``stream_options.include_usage`` adds
    DONE = "done"  # the stream's final event (``data: [DONE]``, ``message_stop``, ...)
    OTHER = "other"  # comments, events without data, errors, anything else


class KeptBudget:
    """The bytes that one process's stream trackers keep unparsed (see
    ``OpenAIStreamTracker``), and how many they may keep in all.

    A tracker parses what it kept once that passes its own ``LAZY_LIMIT`` only while the
    process keeps more than ``limit`` in all, or once it passes ``ceiling`` by itself: so a
    long stream is not parsed for nothing (its usage usually comes, and then its text is never
    read) while memory stays bounded across streams. A parse holds the event loop for as long
    as what it parses is big: the ceiling bounds that pause. Counts are of
    the blocks' bytes; chunks kept one by one (as ``str``) can take up to ~4x that in memory.
    """

    def __init__(self, limit: int = 32 * 1024 * 1024, ceiling: int = 1024 * 1024) -> None:
        self.limit = limit
        self.ceiling = ceiling
        self.used = 0

    def tight(self, kept: int) -> bool:
        """Whether a tracker keeping ``kept`` bytes (past its LAZY_LIMIT) should parse them."""
        return kept > self.ceiling or self.used > self.limit


@dataclass(frozen=True, slots=True)
class TrackerMark:
    text_length: int
    usage: Usage | None
    state: Any  # the subclass's own copy of whatever it accumulates


class TextTracker:
    """Base of the Anthropic and Responses trackers; subclasses implement ``feed``."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.unreadable_usage: object = None  # the last usage report that could not be read
        # Joined only when read: a long stream adds thousands of small pieces.
        self._text: list[str] = []
        self._text_length = 0

    @property
    def text(self) -> str:
        if len(self._text) > 1:
            self._text[:] = ["".join(self._text)]
        return self._text[0] if self._text else ""

    def append(self, value: object) -> None:
        if isinstance(value, str) and value:
            self._text.append(value)
            self._text_length += len(value)

    def feed_plain(self, run: bytes, inners: list[bytes]) -> int:
        """Take plain ``data:`` events from the start of a run where that is the same as
        feeding each (see ``OpenAIStreamTracker``); returns how many. This base takes none."""
        return 0

    def release(self) -> None:
        """The stream is over: stop counting what this tracker keeps in its process's budget."""

    def mark(self) -> TrackerMark:
        """Remember what has been recorded so far, to ``truncate`` back to it."""
        return TrackerMark(self._text_length, self.usage, self.snapshot())

    def truncate(self, mark: TrackerMark) -> None:
        """Forget what was recorded since ``mark`` (e.g. events the client never received)."""
        if self._text_length > mark.text_length:
            kept = self.text[: mark.text_length]
            self._text[:] = [kept] if kept else []
            self._text_length = mark.text_length
        self.usage = mark.usage
        self.restore(mark.state)

    def snapshot(self) -> Any:
        return None

    def restore(self, state: Any) -> None:
        pass


def event_json(event: SSEEvent) -> dict[str, Any] | None:
    """The event's data as a JSON object, or None (no data, not JSON, not an object)."""
    data = event.data
    if data is None or "{" not in data:
        return None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def body_json(data: bytes) -> dict[str, Any] | None:
    """A whole response body as a JSON object, or None."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def count(value: object) -> int:
    """A token count from upstream JSON (``50.0`` is 50), else 0; readers reject a report
    with a bad count before they get here (usage_checks.bad_counts)."""
    return read_count(value) or 0


def partial_usage(reported: Usage | None, estimate: Usage) -> Usage:
    """Usage of a stream that did not finish: what the upstream had already reported, where it
    reported it (Anthropic's ``message_start`` carries the exact prompt counts), else the
    estimate; output is the larger of the reported count and the text actually relayed."""
    if reported is None:
        return estimate
    prompt = reported if reported.prompt_tokens > 0 else estimate
    return Usage(
        input_tokens=prompt.input_tokens,
        cache_read_tokens=prompt.cache_read_tokens,
        cache_write_tokens=prompt.cache_write_tokens,
        cache_write_1h_tokens=prompt.cache_write_1h_tokens,
        output_tokens=max(reported.output_tokens, estimate.output_tokens),
        reasoning_tokens=min(
            reported.reasoning_tokens, max(reported.output_tokens, estimate.output_tokens)
        ),
    )
