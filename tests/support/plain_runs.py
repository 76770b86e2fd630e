"""Helpers for the relay fast path's differential tests (tests/unit/test_plain_runs*.py):
chunks as OpenAI writes them, and the relay's loop run both ways over the same reads."""

from __future__ import annotations

import json
import random

import orjson

from gateway.apis.openai import ChatCompletions
from gateway.apis.openai_stream import OpenAIStreamTracker
from gateway.apis.tracking import EventKind, KeptBudget, TrackerMark
from gateway.codecs.sse import SSEDecoder, SSEEvent, plain_events
from gateway.edge.relay_read import take


def chunk_line(content: str, *, usage: object = None, spaced: bool = False) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
        "usage": usage,
    }
    text = json.dumps(chunk) if spaced else orjson.dumps(chunk).decode()
    return f"data: {text}\n\n".encode()


def split_blocks(run: bytes) -> list[SSEEvent]:
    """The events of ``run``, whole blocks, as the per-event decoder makes them."""
    decoder = SSEDecoder(max_buffer=len(run))
    return decoder.feed(run) + decoder.flush()


def inner_of(block: bytes) -> bytes:
    """A plain block's data without its outer braces, as ``feed_plain`` hands it over."""
    assert block.startswith(b"data: {") and block.endswith(b"}\n\n")
    return block[len(b"data: {") : -len(b"}\n\n")]


def decode_both_ways(reads: list[bytes], use_plain: bool) -> list[list[SSEEvent]]:
    """Events per read, through ``feed_plain`` first when ``use_plain``, else ``feed`` only."""
    decoder = SSEDecoder()
    out = []
    for data in reads:
        plain = decoder.feed_plain(data) if use_plain else None
        if plain is None:
            out.append(decoder.feed(data))
            continue
        run, inners, rest = plain
        events = split_blocks(run)
        assert [inner_of(e.raw) for e in events] == inners
        assert plain_events(inners) == events
        out.append(events + decoder.feed(rest))
    out.append(decoder.flush())
    return out


def relay(reads: list[bytes], strip: bool, fast: bool, rng: random.Random) -> tuple[object, ...]:
    """What the proxy's loop does with each read (fast: with plain runs), plus marks and
    truncates at random, as a client that goes away makes it. Returns everything observable."""
    endpoint = ChatCompletions()
    # No budget: parse past LAZY_LIMIT; a roomy one: never; a full one: past LAZY_LIMIT; one
    # with a small ceiling: past the larger of the two.
    budget = rng.choice([None, KeptBudget(10**9, 10**9), KeptBudget(0), KeptBudget(10**9, 700)])
    decoder, tracker = SSEDecoder(), OpenAIStreamTracker(budget)
    tracker.LAZY_LIMIT = rng.choice([10**9, 500, 50])
    written: list[bytes] = []
    kinds: list[EventKind] = []
    marks: list[TrackerMark] = []
    texts: list[str] = []
    at_done: list[object] = []  # what the stream would be billed, at each [DONE]
    for data in reads:
        mark = tracker.mark()
        if fast:
            plain, events = take(decoder, tracker, endpoint, data, strip)
            kinds += [EventKind.CHUNK] * plain.count(b"\n\n")
        else:
            plain, events = b"", decoder.feed(data)
        if not (plain or events):
            continue
        out = [plain] if plain else []
        for event in events:
            kind = tracker.feed(event)
            kinds.append(kind)
            if kind is EventKind.DONE:
                at_done.append((tracker.usage, tracker.model))
            if kind is EventKind.USAGE_ONLY and strip:
                continue
            out.append(endpoint.rewrite_event(event.raw, kind, strip))
        assert tracker._kept_size == sum(tracker._kept_sizes)
        assert len(tracker._kept_sizes) == len(tracker._kept)
        assert budget is None or budget.used == tracker._kept_size
        marks.append(mark)  # marks[i] was taken just before written[i]
        if rng.random() < 0.1:  # this read never reached the client: forget it (or more)
            index = len(marks) - 1 if rng.random() < 0.7 else rng.randrange(len(marks))
            tracker.truncate(marks[index])
            del marks[index:], written[index:]
            continue
        written.append(b"".join(out))
        if rng.random() < 0.1:  # reading the text in between parses what was kept
            texts.append(tracker.text)
    kinds += [tracker.feed(event) for event in decoder.flush()]
    assert budget is None or budget.used == tracker._kept_size
    tracker.release()
    assert budget is None or budget.used == 0
    return (b"".join(written), kinds, texts, at_done, tracker.text, tracker.chunks,
            tracker.usage, tracker.model)  # fmt: skip
