"""Responses API usage: cached tokens inside input, and the three terminal stream events."""

from __future__ import annotations

import orjson
import pytest

from gateway.apis.responses import ResponsesStreamTracker, usage_from_responses
from gateway.apis.tokens import TokenCounter
from gateway.apis.tracking import EventKind
from gateway.codecs.sse import SSEDecoder
from gateway.upstream.mock_responses import responses_answer
from pricing import Usage

USAGE = {
    "input_tokens": 2000,
    "input_tokens_details": {"cached_tokens": 1536},
    "output_tokens": 500,
    "output_tokens_details": {"reasoning_tokens": 320},
    "total_tokens": 2500,
}


def event(name: str, payload: dict[str, object]) -> bytes:
    return (
        b"event: "
        + name.encode()
        + b"\ndata: "
        + orjson.dumps({"type": name, **payload})
        + (b"\n\n")
    )


def stream(final: str) -> bytes:
    return b"".join([
        event("response.created", {"response": {"status": "in_progress", "usage": None}}),
        event("response.output_text.delta", {"delta": "Hel"}),
        event("response.output_text.delta", {"delta": "lo"}),
        event("response.function_call_arguments.delta", {"delta": "{}"}),
        event(final, {"response": {"status": final.split(".")[1], "usage": USAGE}}),
    ])  # fmt: skip


def track(chunks: list[bytes]) -> tuple[ResponsesStreamTracker, list[EventKind]]:
    decoder = SSEDecoder()
    tracker = ResponsesStreamTracker()
    kinds = [tracker.feed(e) for chunk in chunks for e in decoder.feed(chunk)]
    return tracker, kinds


def test_cached_tokens_come_out_of_input() -> None:
    assert usage_from_responses(USAGE) == Usage(
        input_tokens=464, output_tokens=500, cache_read_tokens=1536, reasoning_tokens=320
    )


def test_cache_writes_where_reported() -> None:
    usage = {**USAGE, "input_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 600}}
    assert usage_from_responses(usage) == Usage(
        input_tokens=400, output_tokens=500, cache_read_tokens=1000, cache_write_tokens=600,
        reasoning_tokens=320,
    )  # fmt: skip


@pytest.mark.parametrize("usage", [None, {}, {"input_tokens": None}, {"input_tokens": 1.5},
                                   {"input_tokens": 10, "output_tokens": -1}])
def test_no_usage(usage: object) -> None:
    assert usage_from_responses(usage) is None


def test_more_cached_than_prompt_is_unreadable_and_reasoning_is_capped() -> None:
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 50},
             "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 9}}  # fmt: skip
    assert usage_from_responses(usage) is None
    usage["input_tokens_details"] = {"cached_tokens": 10}
    assert usage_from_responses(usage) == Usage(0, 3, 10, 0, 3)


@pytest.mark.parametrize("final", ["response.completed", "response.incomplete",
                                   "response.failed"])  # fmt: skip
def test_each_terminal_event_is_done_and_carries_usage(final: str) -> None:
    data = stream(final)
    for cut in range(1, len(data)):
        tracker, kinds = track([data[:cut], data[cut:]])
        assert kinds == [EventKind.CHUNK] * 4 + [EventKind.DONE], cut
        assert tracker.usage == usage_from_responses(USAGE)
        assert tracker.text == "Hello{}"


def test_error_and_garbage_are_other() -> None:
    _, kinds = track([b'event: error\ndata: {"type": "error", "message": "x"}\n\n',
                      b"data: nope\n\n", b": keep-alive\n\n"])  # fmt: skip
    assert kinds == [EventKind.OTHER] * 3


def test_mock_stream_is_the_responses_event_sequence() -> None:
    payload = {"model": "gpt-x", "input": "hello there", "stream": True}
    result = responses_answer(payload, TokenCounter(), 0, None)
    names = [c.split(b"\n")[0].removeprefix(b"event: ").decode() for c in result.chunks]
    deltas = names.count("response.output_text.delta")
    assert deltas > 1
    assert names == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", *["response.output_text.delta"] * deltas,
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    sequence = [orjson.loads(c.split(b"data: ", 1)[1])["sequence_number"] for c in result.chunks]
    assert sequence == list(range(len(result.chunks)))
    tracker, _ = track(result.chunks)
    assert tracker.usage is not None and tracker.text.startswith("This is gpt-x")


def test_mock_cut_short_is_incomplete() -> None:
    payload = {"model": "gpt-x", "input": "hello", "max_output_tokens": 2}
    doc = orjson.loads(responses_answer(payload, TokenCounter(), 0, None).chunks[0])
    assert doc["status"] == "incomplete"
    assert doc["incomplete_details"] == {"reason": "max_output_tokens"}
    assert doc["usage"]["output_tokens"] <= 2
