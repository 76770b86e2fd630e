"""Anthropic usage: the JSON body, and streams where message_delta counts are cumulative."""

from __future__ import annotations

import random

import orjson
import pytest

from gateway.apis.anthropic_usage import (
    AnthropicStreamTracker,
    read_anthropic_usage,
    usage_from_anthropic,
)
from gateway.apis.tokens import TokenCounter
from gateway.apis.tracking import EventKind
from gateway.codecs.sse import SSEDecoder
from gateway.upstream.mock_anthropic import messages_answer
from pricing import Usage


def event(name: str, payload: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


STREAM = b"".join([
    event("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "content": [],
        "usage": {"input_tokens": 1200, "cache_creation_input_tokens": 2000,
                  "cache_read_input_tokens": 10000, "output_tokens": 1}}}),
    event("content_block_start", {"type": "content_block_start", "index": 0,
                                  "content_block": {"type": "text", "text": ""}}),
    event("ping", {"type": "ping"}),
    event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "text_delta", "text": "Héllo"}}),
    event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "text_delta", "text": " world"}}),
    event("content_block_stop", {"type": "content_block_stop", "index": 0}),
    # Two deltas, both cumulative: the second is the truth, a sum would be wrong.
    event("message_delta", {"type": "message_delta", "delta": {"stop_reason": None},
                            "usage": {"output_tokens": 120}}),
    event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                            "usage": {"input_tokens": 1200, "cache_read_input_tokens": 10000,
                                      "output_tokens": 350}}),
    event("message_stop", {"type": "message_stop"}),
])  # fmt: skip

EXPECTED = Usage(
    input_tokens=1200, output_tokens=350, cache_read_tokens=10000, cache_write_tokens=2000
)


def track(chunks: list[bytes]) -> tuple[AnthropicStreamTracker, list[EventKind]]:
    decoder = SSEDecoder()
    tracker = AnthropicStreamTracker()
    kinds = [tracker.feed(e) for chunk in chunks for e in decoder.feed(chunk)]
    kinds += [tracker.feed(e) for e in decoder.flush()]
    return tracker, kinds


def test_plain_usage_excludes_both_cache_buckets() -> None:
    usage = {
        "input_tokens": 1200,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 10000,
        "output_tokens": 350,
        "output_tokens_details": {"thinking_tokens": 200},
    }
    assert usage_from_anthropic(usage) == Usage(
        input_tokens=1200,
        output_tokens=350,
        cache_read_tokens=10000,
        cache_write_tokens=2000,
        reasoning_tokens=200,
    )


def test_cache_durations_are_kept_apart() -> None:
    usage = {
        "input_tokens": 5,
        "output_tokens": 1,
        "cache_creation_input_tokens": 3000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    }
    read = read_anthropic_usage(usage)
    assert read is not None
    assert (read.cache_write_5m, read.cache_write_1h) == (1000, 2000)
    assert read.to_usage() == Usage(
        input_tokens=5, output_tokens=1, cache_write_tokens=1000, cache_write_1h_tokens=2000
    )
    # Without the total, the breakdown is the total.
    del usage["cache_creation_input_tokens"]
    assert usage_from_anthropic(usage) == read.to_usage()


@pytest.mark.parametrize(
    "usage",
    [None, [], {}, {"output_tokens": 3}, {"input_tokens": "3"}, {"input_tokens": True}],
)
def test_no_usage(usage: object) -> None:
    assert usage_from_anthropic(usage) is None


def test_odd_counts_make_the_report_unreadable() -> None:
    usage = {"input_tokens": 4, "output_tokens": 2.5, "cache_read_input_tokens": True,
             "cache_creation": "x", "output_tokens_details": {"thinking_tokens": 99}}  # fmt: skip
    assert usage_from_anthropic(usage) is None
    assert usage_from_anthropic({**usage, "output_tokens": 2, "cache_read_input_tokens": 0}) == (
        Usage(input_tokens=4, output_tokens=2, reasoning_tokens=2))
    assert usage_from_anthropic({"input_tokens": 4.0, "output_tokens": 50.0}) == (
        Usage(input_tokens=4, output_tokens=50))


def test_stream_takes_the_last_value_of_each_field() -> None:
    tracker, kinds = track([STREAM])
    assert tracker.usage == EXPECTED
    assert tracker.text == "Héllo world"
    assert kinds[-1] is EventKind.DONE and kinds.count(EventKind.DONE) == 1
    assert kinds[2] is EventKind.OTHER  # ping


def test_every_split_gives_the_same_answer() -> None:
    for cut in range(1, len(STREAM)):
        tracker, kinds = track([STREAM[:cut], STREAM[cut:]])
        assert tracker.usage == EXPECTED and tracker.text == "Héllo world", cut
        assert kinds[-1] is EventKind.DONE
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(STREAM)), 12))
        pieces = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True)]
        assert track(pieces)[0].usage == EXPECTED
    assert track([bytes([b]) for b in STREAM])[0].usage == EXPECTED


def test_truncate_forgets_what_came_after_the_mark() -> None:
    decoder = SSEDecoder()
    tracker = AnthropicStreamTracker()
    events = decoder.feed(STREAM)
    for e in events[:4]:
        tracker.feed(e)
    mark = tracker.mark()
    for e in events[4:8]:
        tracker.feed(e)
    assert tracker.usage == EXPECTED
    tracker.truncate(mark)
    assert tracker.text == "Héllo"
    assert tracker.usage == Usage(input_tokens=1200, output_tokens=1, cache_read_tokens=10000,
                                  cache_write_tokens=2000)  # fmt: skip
    tracker.feed(events[7])  # the cumulative delta still wins over what the mark kept
    assert tracker.usage == EXPECTED


def test_garbage_events_are_other() -> None:
    _, kinds = track([b"data: not json\n\n", b": comment\n\n", b"data: [1]\n\n",
                      b"event: error\ndata: {\"type\": \"error\"}\n\n"])  # fmt: skip
    assert kinds == [EventKind.OTHER] * 4


def test_mock_stream_is_anthropics_event_sequence() -> None:
    body = orjson.dumps({"model": "claude-x", "max_tokens": 50, "stream": True,
                         "messages": [{"role": "user", "content": "hi there"}]})  # fmt: skip
    result = messages_answer(body, TokenCounter(), {"input_tokens": 7})
    names = [c.split(b"\n")[0].removeprefix(b"event: ").decode() for c in result.chunks]
    deltas = names.count("content_block_delta")
    assert deltas > 1
    assert names == ["message_start", "content_block_start", "ping",
                     *["content_block_delta"] * deltas,
                     "content_block_stop", "message_delta", "message_stop"]  # fmt: skip
    tracker, _ = track(result.chunks)
    assert tracker.usage is not None and tracker.usage.input_tokens == 7
    assert tracker.text.startswith("This is claude-x")


def test_mock_refuses_like_anthropic() -> None:
    body = orjson.dumps({"model": "claude-x", "messages": []})
    result = messages_answer(body, TokenCounter(), None)
    assert result.status == 400
    assert orjson.loads(result.chunks[0])["error"]["message"] == "max_tokens: Field required"


def test_the_hold_prices_a_cacheable_prompt_at_its_dearest_bucket() -> None:
    from gateway.apis.anthropic import Messages
    from pricing import ModelPrice

    endpoint = Messages()
    counter = TokenCounter()
    price = ModelPrice(model="c", input=3, output=15, cache_write=4, cache_write_1h=6)
    plain = endpoint.parse(
        b'{"model": "c", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}', ""
    )
    held = endpoint.worst_case(plain, price, counter, 100)
    assert held.input_tokens > 0 and held.output_tokens == 9
    cached = endpoint.parse(
        b'{"model": "c", "max_tokens": 9, "system": [{"type": "text", "text": "long",'
        b' "cache_control": {"type": "ephemeral", "ttl": "1h"}}], "messages": []}',
        "",
    )
    held = endpoint.worst_case(cached, price, counter, 100)
    assert held.input_tokens == 0 and held.cache_write_1h_tokens > 0
    cheap_writes = ModelPrice(model="c", input=3, output=15, cache_write=2)
    assert endpoint.worst_case(cached, cheap_writes, counter, 100).input_tokens > 0
