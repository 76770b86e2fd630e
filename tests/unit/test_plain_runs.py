"""The relay's fast path for runs of ordinary chunks must do exactly what the per-event path does.

``SSEDecoder.feed_plain`` hands over a run of single-line ``data: {...}`` blocks at once,
``OpenAIStreamTracker.feed_plain`` keeps them unparsed, and ``ChatCompletions.rewrite_plain``
strips the forced ``"usage":null`` from all of them with one replace. Each is checked here
against the per-event path on random streams, cut into random reads.
"""

from __future__ import annotations

import json
import random

import orjson
import pytest

from gateway.endpoints.openai import ChatCompletions
from gateway.relay_read import take
from gateway.sse import SSEBufferOverflow, SSEDecoder, SSEEvent, plain_events
from gateway.tracking import TrackerMark
from gateway.usage import EventKind, OpenAIStreamTracker


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


def split_blocks(run: bytes) -> list[SSEEvent]:
    """The events of ``run``, whole blocks, as the per-event decoder makes them."""
    decoder = SSEDecoder(max_buffer=len(run))
    return decoder.feed(run) + decoder.flush()


def inner_of(block: bytes) -> bytes:
    """A plain block's data without its outer braces, as ``feed_plain`` hands it over."""
    assert block.startswith(b"data: {") and block.endswith(b"}\n\n")
    return block[len(b"data: {") : -len(b"}\n\n")]


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


@pytest.mark.parametrize("seed", range(60))
def test_decoding_with_plain_runs_gives_the_same_events_per_read(seed: int) -> None:
    rng = random.Random(seed)
    stream = random_stream(rng)
    reads = random_reads(stream, rng)
    assert decode_both_ways(reads, True) == decode_both_ways(reads, False)


def relay(reads: list[bytes], strip: bool, fast: bool, rng: random.Random) -> tuple[object, ...]:
    """What the proxy's loop does with each read (fast: with plain runs), plus marks and
    truncates at random, as a client that goes away makes it. Returns everything observable."""
    endpoint = ChatCompletions()
    decoder, tracker = SSEDecoder(), OpenAIStreamTracker()
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
    return (b"".join(written), kinds, texts, at_done, tracker.text, tracker.chunks,
            tracker.usage, tracker.model)  # fmt: skip


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


# A usage whose key hides behind a JSON escape: no literal "usage", so both paths keep the
# chunk unparsed, and its usage counts only when the kept chunks are parsed (a broken or
# hostile upstream; found by review). The usage billed must still be the stream's last one.
ESCAPED_USAGE = b'data: {"choices":[],"\\u0075sage":{"prompt_tokens":9,"completion_tokens":9}}\n\n'
USAGE_ONLY = b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":1}}\n\n'
LAST_USAGE = (
    b'data: {"choices":[{"delta":{"content":"!"}}],'
    b'"usage":{"prompt_tokens":7,"completion_tokens":1}}\n\n'
)


def usage_after(blocks: list[bytes], *, parse_at_end: bool) -> tuple[int, int] | None:
    decoder, tracker = SSEDecoder(), OpenAIStreamTracker()
    for event in decoder.feed(b"".join(blocks)):
        tracker.feed(event)
    if parse_at_end:
        assert isinstance(tracker.text, str)  # reading the text parses what was kept
    u = tracker.usage
    return None if u is None else (u.input_tokens, u.output_tokens)


@pytest.mark.parametrize("parse_at_end", [False, True])
def test_a_later_usage_is_not_replaced_by_an_older_kept_one(parse_at_end: bool) -> None:
    a = chunk_line("a")
    assert usage_after([a, a, ESCAPED_USAGE, LAST_USAGE], parse_at_end=parse_at_end) == (7, 1)
    assert usage_after([a, a, ESCAPED_USAGE, USAGE_ONLY], parse_at_end=parse_at_end) == (7, 1)


def test_an_escaped_usage_after_the_real_one_is_the_last_once_parsed() -> None:
    a = chunk_line("a")
    blocks = [a, a, USAGE_ONLY, a, ESCAPED_USAGE]
    assert usage_after(blocks, parse_at_end=False) == (7, 1)  # still kept, unread
    assert usage_after(blocks, parse_at_end=True) == (9, 9)  # in stream order, it is last


@pytest.mark.parametrize("last", [LAST_USAGE, b""])
def test_both_paths_parse_kept_chunks_at_the_same_marks(last: bytes) -> None:
    """Both count what they keep in the bytes it came in, so past LAZY_LIMIT they parse at
    the same mark: the usage at [DONE] (what the stream is billed) and after it agree. (When
    the fast path counted bytes and feed characters, a run just under the limit for one was
    over it for the other.)"""
    body = chunk_line("x" * 100)
    n = (OpenAIStreamTracker.LAZY_LIMIT - 200) // (len(body) - 8)
    reads = [chunk_line("a") + body * n + ESCAPED_USAGE, last + b"data: [DONE]\n\n"]
    got = {}
    for fast in (True, False):
        endpoint, decoder, tracker = ChatCompletions(), SSEDecoder(), OpenAIStreamTracker()
        at_done = None
        for data in reads:
            tracker.mark()  # as the proxy does before every read
            events = take(decoder, tracker, endpoint, data, True)[1] if fast else decoder.feed(data)
            for event in events:
                if tracker.feed(event) is EventKind.DONE:
                    at_done = tracker.usage
        got[fast] = (at_done, tracker.usage)
    assert got[True] == got[False]
    if last:
        assert got[True][1] is not None and got[True][1].output_tokens == 1


# Streams built to break the fast path (from a review's fuzzer): JSON that holds the block
# join or "usage" in its strings, escaped keys, odd line ends and field lines, blocks cut
# anywhere, reads ending on block boundaries.
CONTENTS = ["a", "}\n\ndata: {", '"usage":null}', '"usage"', "\\", "\r", "é", "\u2028", "",
            "x" * 50, "data: {", '\\"usage\\":null}']  # fmt: skip
ODD_DATAS = [
    b'{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3}}',
    b'{"choices":[{"delta":{"content":"u"}}],"usage":{"prompt_tokens":7,"completion_tokens":1}}',
    b'{"choices":[],"\\u0075sage":{"prompt_tokens":9,"completion_tokens":9}}',
    b'{"usage":null,"choices":[{"delta":{"content":"z"}}]}',
    b'{"choices":[{"delta":{"content":"q"}}],"usage":null,"usage":null}',
    b'{"choices":[{"delta":{"content":"bad\xff\xfe"}}],"usage":null}',
    b'{"choices":[{"delta":{"content":"\xe2\x82"}}],"usage":null}',
    b"{}", b"{{}", b"{}}", b'{"choices":{}}', b'{"x":{"choices":[1]},"usage":null}',
    b'{"choices":[{"text":"legacy"}],"usage":null}',
    b'{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{\\"a\\":1}"}}]}}],'
    b'"usage":null}',
    b'{"choices":[],"usage":null}',
    b'{"model":"late","choices":[{"delta":{"content":"L"}}],"usage":null}',
    b"[DONE]", b"{not json}", b'{"choices":[{"delta":{"content":"sp"}}],"usage":null} ',
]  # fmt: skip
ENDS = [b"\n\n"] * 12 + [b"\r\n\r\n", b"\r\r", b"\n\r\n", b"\r\n\n", b"\n\n\n", b"\n\r"]
STARTS = [b"data: "] * 10 + [b"data:", b"\n", b"event: x\ndata: ", b": c\ndata: ", b"\r\ndata: "]
OTHER_BLOCKS = [b"data: [DONE]\n\n", b": ping\n\n", b'event: error\ndata: {"error":1}\n\n',
                b"id: 3\n\n", b'data: {"a":1}\ndata: {"b":2}\n\n', b"retry: 5\n\n"]  # fmt: skip


def adversarial_block(rng: random.Random) -> bytes:
    if rng.random() >= 0.85:
        return rng.choice(OTHER_BLOCKS)
    if rng.random() < 0.5:
        chunk = {"id": "c", "choices": [{"index": 0, "delta": {"content": rng.choice(CONTENTS)}}]}
        model = rng.choice(["gpt-x", "gpt-x", None, ""])
        if model is not None:
            chunk = {"id": "c", "model": model, "choices": chunk["choices"]}
        if rng.random() < 0.67:
            chunk["usage"] = None
        data = orjson.dumps(chunk)
    else:
        data = rng.choice(ODD_DATAS)
    return rng.choice(STARTS) + data + rng.choice(ENDS)


def adversarial_reads(data: bytes, rng: random.Random) -> list[bytes]:
    if rng.random() < 0.15:
        return [data]
    reads, pos = [], 0
    at_block_ends = rng.random() < 0.2
    while pos < len(data):
        if at_block_ends:
            end = data.find(b"\n\n", pos + rng.randint(0, 300))
            end = len(data) if end < 0 else end + 2
        else:
            end = pos + rng.choice((1, 2, 3, 5, 13, 60, 150, 400, 2000))
        reads.append(data[pos:end])
        pos = end
    return reads


@pytest.mark.parametrize("group", range(10))
def test_adversarial_streams_relay_the_same_both_ways(group: int) -> None:
    for seed in range(group * 60, group * 60 + 60):
        rng = random.Random(seed)
        stream = b"".join(adversarial_block(rng) for _ in range(rng.randint(1, 40)))
        reads = adversarial_reads(stream, rng)
        assert decode_both_ways(reads, True) == decode_both_ways(reads, False), seed
        strip = rng.random() < 0.7
        state = rng.getstate()
        fast = relay(reads, strip, True, rng)
        rng.setstate(state)  # the same truncates on both sides
        assert fast == relay(reads, strip, False, rng), seed
