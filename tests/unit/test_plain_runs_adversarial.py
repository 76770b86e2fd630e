"""The relay's fast path against the per-event path on streams built to break it.

A review's fuzzer found that a usage hidden behind a JSON escape could be billed differently
by the two paths; these pin that, and its generator of adversarial streams runs here as a
differential test (tests/unit/test_plain_runs.py has the ordinary random streams).
"""

from __future__ import annotations

import random

import orjson
import pytest

from gateway.apis.openai import ChatCompletions
from gateway.apis.openai_stream import OpenAIStreamTracker
from gateway.apis.tracking import EventKind
from gateway.codecs.sse import SSEDecoder
from gateway.edge.relay_read import take
from tests.support.plain_runs import chunk_line, decode_both_ways, relay

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
