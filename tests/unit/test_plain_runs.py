"""The relay's fast path for runs of ordinary chunks must do exactly what the per-event path does.

``SSEDecoder.feed_plain`` hands over a run of single-line ``data: {...}`` blocks at once,
``OpenAIStreamTracker.feed_plain`` keeps them unparsed, and ``ChatCompletions.rewrite_plain``
strips the forced ``"usage":null`` from all of them with one replace. Each is checked here
against the per-event path on random streams, cut into random reads.
"""

from __future__ import annotations

import random

import pytest

from gateway.apis.openai import ChatCompletions
from gateway.apis.openai_stream import OpenAIStreamTracker
from gateway.apis.tracking import EventKind
from gateway.codecs.sse import SSEBufferOverflow, SSEDecoder
from gateway.edge.relay_read import take
from tests.support.plain_runs import chunk_line, decode_both_ways, inner_of, relay, split_blocks


def random_block(rng: random.Random) -> bytes:
    """Mostly ordinary chunks, and now and then everything a stream may also hold."""
    pick = rng.random()
    if pick < 0.6:
        return chunk_line(rng.choice(["a", " bc", "é\\n", "", '"q"', "\u2028"]))
    if pick < 0.75:  # as an upstream that ignores stream_options writes them: no usage at all
        return chunk_line(rng.choice(["d", " ef"])).replace(b',"usage":null', b"")
    others = [
        chunk_line("X", spaced=True),  # not OpenAI's spelling: parsed at once
        chunk_line("", usage={"prompt_tokens": 3, "completion_tokens": 2}),
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n',
        b"data: [DONE]\n\n",
        b": keep-alive\n\n",
        b'event: error\ndata: {"error":{"message":"x"}}\n\n',
        b'data: {"choices":[{"delta":{"content":"two"}}]}\r\n\r\n',
        b'data: {"choices":[{"delta":{"content":"line"}}],\ndata: "x":1}\n\n',
        b"\n" + chunk_line("after a blank line"),
        b'data: {"choices":[{"delta":{"content":"bad \xff utf-8"}}],"usage":null}\n\n',
        b'data: {"no":"choices","usage":null}\n\n',
        b'data: {"choices":[{"delta":{"content":"space"}}],"usage":null} \n\n',
        b'data: {"choices":[{"delta":{"content":"s"}}],"usage":null}\n\n',
        b'data:{"choices":[{"delta":{"content":"no space"}}],"usage":null}\n\n',
        b'data: {"choices":[{"delta":{"content":"a \r line end"}}],"usage":null}\n\n',
        b'event: x {"choices":[]}\n\n',
        b'data: {"choices":[{"delta":{"content":"n"},"x":{"a":1,"usage":null}}],"usage":null}\n\n',
        b'data: {"choices":[{"delta":{"content":"m"}}],"usage":null}\nid: 7\n\n',
        b'data: "choices":[{}],"usage":null}\n\n',  # ends like a chunk, is not JSON
        b': ping{"choices":[],"usage":null}\n\n',  # a comment
    ]
    return rng.choice(others)


def random_reads(data: bytes, rng: random.Random) -> list[bytes]:
    reads, pos = [], 0
    while pos < len(data):
        size = rng.choice((1, 7, 40, 180, 181, 400, 1500, 9000))
        reads.append(data[pos : pos + size])
        pos += size
    return reads


# Blocks without a model: a stream that starts with some keeps the tracker reading chunks
# at once (for the model) for a while.
NAMELESS = [
    b'data: {"choices":[{"delta":{"content":"x"}}],"usage":null}\n\n',
    b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n',
    b'data: {"choices":[],"usage":null}\n\n',
    b'data: {"choices":{"0":1},"usage":null}\n\n',
    b'data: {"x":{"choices":[1]},"usage":null}\n\n',
    b'data: {"choices":[{"delta":{"content":"y"}}],"model":""}\n\n',
    b'data: {"choices":[{"delta":{"content":"bad \xff"}}]}\n\n',
    b"data: {not json}\n\n",
]


def random_stream(rng: random.Random) -> bytes:
    head = rng.choices(NAMELESS, k=rng.choice([0, 0, 1, 3, 6]))
    return b"".join(head + [random_block(rng) for _ in range(rng.randint(1, 60))])


def test_a_run_of_plain_blocks_comes_out_whole_and_the_tail_waits() -> None:
    decoder = SSEDecoder()
    first, second = chunk_line("a"), chunk_line("b")
    assert decoder.feed_plain(first + second[:10]) == (first, [inner_of(first)], b"")
    assert decoder.pending == 10
    assert decoder.feed_plain(second[10:] + first) == (
        second + first,
        [inner_of(second), inner_of(first)],
        b"",
    )
    assert decoder.pending == 0


def test_what_follows_a_plain_run_is_left_for_feed() -> None:
    decoder = SSEDecoder()
    first, done = chunk_line("a"), b"data: [DONE]\n\n"
    assert decoder.feed_plain(first + done + first[:5]) == (
        first,
        [inner_of(first)],
        done + first[:5],
    )
    assert decoder.pending == 0


@pytest.mark.parametrize(
    "chunk",
    [
        b"data: [DONE]\n\n",
        b": comment\n\n",
        b"data: {}\r\n\r\n",
        b"event: x\ndata: {}\n\n",
        b"\ndata: {}\n\n",  # a blank line opens the block
        b'data:{"a":1}\n\ndata: {"b":2}\n\n',  # valid SSE, but not the plain spelling
        b'event: x}\n\ndata: {"b":2}\n\n',
        b': ping{"a":1}\n\ndata: {"b":2}\n\n',
        b'data: {"a":1} \n\n',
        b"data: {}",  # completes nothing
    ],
)
def test_anything_else_first_is_left_to_feed_untouched(chunk: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed_plain(chunk) is None
    assert decoder.pending == 0


def test_a_line_end_in_the_waiting_part_is_left_to_feed() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"choices":[{"delta":{"content":"x\r') == []
    assert decoder.feed_plain(b'y"}}]}\n\n') is None  # "\r" ended a line: two lines
    [event] = decoder.feed(b'y"}}]}\n\n')
    assert event.data == '{"choices":[{"delta":{"content":"x'


def test_a_long_event_in_many_reads_comes_out_when_it_ends() -> None:
    decoder = SSEDecoder()
    line = chunk_line("x" * 5000)
    for i in range(0, len(line) - 2, 100):
        piece = line[i : min(i + 100, len(line) - 2)]
        assert decoder.feed_plain(piece) is None  # no block end in it: left to feed
        assert decoder.feed(piece) == []
    assert decoder.feed_plain(b"\n\n") == (line, [inner_of(line)], b"")
    assert decoder.pending == 0


@pytest.mark.parametrize("seed", range(60))
def test_decoding_with_plain_runs_gives_the_same_events_per_read(seed: int) -> None:
    rng = random.Random(seed)
    stream = random_stream(rng)
    reads = random_reads(stream, rng)
    assert decode_both_ways(reads, True) == decode_both_ways(reads, False)


@pytest.mark.parametrize("seed", range(60))
def test_relaying_with_plain_runs_matches_event_by_event(seed: int) -> None:
    """Same bytes to the client, same kinds, same text, chunk count, usage and model, with
    random truncates, as feeding the tracker one event at a time (which in turn matches
    parsing every chunk at once: tests/unit/test_usage.py)."""
    rng = random.Random(seed)
    stream = random_stream(rng)
    reads = random_reads(stream, rng)
    strip = rng.random() < 0.7
    state = rng.getstate()
    fast = relay(reads, strip, True, rng)
    rng.setstate(state)  # the same truncates on both sides
    assert fast == relay(reads, strip, False, rng)


def split(run: bytes) -> list[bytes]:
    return [e.raw for e in split_blocks(run)]


def test_chunks_are_read_until_the_model_is_known_then_kept() -> None:
    tracker = OpenAIStreamTracker()
    nameless = b'data: {"choices":[{"delta":{"content":"x"}}],"usage":null}\n\n'
    run = nameless + chunk_line("a") + chunk_line("b")
    assert tracker.feed_plain(run, [inner_of(b) for b in split(run)]) == 3
    assert tracker.model == "gpt-4o-mini"
    assert len(tracker._kept) == 1  # only "b": the others were read for the model
    assert (tracker.text, tracker.chunks) == ("xab", 3)


def test_the_tracker_stops_at_the_first_chunk_feed_would_treat_otherwise() -> None:
    tracker = OpenAIStreamTracker()
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1}}\n\n'
    run = chunk_line("a") + usage + chunk_line("b")
    assert tracker.feed_plain(run, [inner_of(b) for b in split(run)]) == 1
    assert tracker.usage is None


def test_rewrite_plain_strips_the_forced_usage_of_every_chunk() -> None:
    endpoint = ChatCompletions()
    run = chunk_line("a") + chunk_line("b")
    expected = b"".join(
        endpoint.rewrite_event(e.raw, EventKind.CHUNK, True) for e in split_blocks(run)
    )
    assert endpoint.rewrite_plain(run, True) == expected
    assert b'"usage"' not in expected
    assert endpoint.rewrite_plain(run, False) == run


REVIEW_CHUNK = b'data: {"model":"m","choices":[{"delta":{"content":"abc"}}],"usage":null}\n\n'


def test_an_overflow_after_a_plain_run_leaves_the_tracker_as_feed_does() -> None:
    # feed raises before the tracker sees anything; take must not have fed the run first.
    read = REVIEW_CHUNK * 3 + b"data: [DONE]\n\n" + b"x" * 100
    slow, fast = OpenAIStreamTracker(), OpenAIStreamTracker()
    with pytest.raises(SSEBufferOverflow):
        SSEDecoder(max_buffer=50).feed(read)
    with pytest.raises(SSEBufferOverflow):
        take(SSEDecoder(max_buffer=50), fast, ChatCompletions(), read, True)
    assert (fast.text, fast.chunks, fast.model) == (slow.text, slow.chunks, slow.model)


USAGE_WITH_NESTED_NULL = (
    b'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"x":{"usage":null}}}\n\n'
)


@pytest.mark.parametrize("fast", [False, True])
def test_a_chunk_with_a_real_usage_is_never_kept_unparsed(fast: bool) -> None:
    # Pre-existing in feed's keep rule, copied by feed_plain: '"usage":null' anywhere in the
    # chunk lets a real usage through unparsed (kind CHUNK, usage None, lost by truncate).
    tracker = OpenAIStreamTracker()
    decoder = SSEDecoder()
    tracker.feed(decoder.feed(REVIEW_CHUNK)[0])
    if fast:
        run = REVIEW_CHUNK + USAGE_WITH_NESTED_NULL + REVIEW_CHUNK
        _, events = take(decoder, tracker, ChatCompletions(), run, True)
        kinds = [tracker.feed(e) for e in events]
    else:
        kinds = [tracker.feed(decoder.feed(USAGE_WITH_NESTED_NULL)[0])]
    assert EventKind.USAGE_ONLY in kinds
    assert tracker.usage is not None and tracker.usage.output_tokens == 4
