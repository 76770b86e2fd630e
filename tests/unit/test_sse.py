from __future__ import annotations

import random

import pytest

from gateway.codecs.sse import SSEBufferOverflow, SSEDecoder, SSEEvent, comment

OPENAI_STREAM = (
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":'
    b'"H\xc3\xa9llo \xf0\x9f\x91\x8b"}}]}\n\n'
    b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3}}\n\n'
    b"data: [DONE]\n\n"
)

MIXED_STREAM = (
    b": keep-alive\n\n"
    b'event: message_start\r\ndata: {"a": 1}\r\n\r\n'
    b"data: one\rdata:two\r\r"
    b"\n\n"  # stray blank lines between events
    b"id: 7\nretry: 100\nevent: ping\ndata:  spaced\n\n"
    b"data: caf\xc3\xa9 \xe2\x82\xac\r\n\n"
    b"data: mixed\n\r\n"
    b"data\n\n"
    b"event: a\nevent: b\n: note\ndata: last\r\n\r\n"
)


def decode_all(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    assert decoder.pending == 0
    return events


def random_chunks(data: bytes, rng: random.Random) -> list[bytes]:
    chunks: list[bytes] = []
    pos = 0
    while pos < len(data):
        size = rng.choice((1, 1, 2, 3, 5, 8, 20, 64, 500))
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


def test_openai_stream_whole() -> None:
    events = decode_all([OPENAI_STREAM])
    assert [e.event for e in events] == [None] * 5
    assert events[1].data == '{"id":"c1","choices":[{"index":0,"delta":{"content":"Héllo 👋"}}]}'
    assert events[-1] == SSEEvent(raw=b"data: [DONE]\n\n", event=None, data="[DONE]")
    assert b"".join(e.raw for e in events) == OPENAI_STREAM


def test_feed_returns_blocks_as_soon_as_they_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.pending == 8
    assert decoder.feed(b"\ndata: b") == [SSEEvent(b"data: a\n\n", None, "a")]
    assert decoder.pending == 7


@pytest.mark.parametrize("stream", [OPENAI_STREAM, MIXED_STREAM], ids=["openai", "mixed"])
def test_split_at_every_byte_boundary(stream: bytes) -> None:
    expected = decode_all([stream])
    for cut in range(1, len(stream)):
        assert decode_all([stream[:cut], stream[cut:]]) == expected, cut


@pytest.mark.parametrize("stream", [OPENAI_STREAM, MIXED_STREAM], ids=["openai", "mixed"])
def test_one_byte_pieces(stream: bytes) -> None:
    pieces = [stream[i : i + 1] for i in range(len(stream))]
    assert decode_all(pieces) == decode_all([stream])


def test_mixed_stream_fields() -> None:
    events = decode_all([MIXED_STREAM])
    assert [(e.event, e.data) for e in events] == [
        (None, None),
        ("message_start", '{"a": 1}'),
        (None, "one\ntwo"),
        ("ping", " spaced"),
        (None, "café €"),
        (None, "mixed"),
        (None, ""),
        ("b", "last"),
    ]
    # "\r\r\n": the second line end is "\r\n", so only one stray "\n" moves to the next block.
    assert events[2].raw == b"data: one\rdata:two\r\r\n"
    assert events[3].raw == b"\nid: 7\nretry: 100\nevent: ping\ndata:  spaced\n\n"
    assert events[5].raw == b"data: mixed\n\r\n"


def test_random_chunkings_reproduce_the_input() -> None:
    rng = random.Random(20240601)
    # The \n -> \r\n rewrite also makes runs like "\r\r\n\r\r\n" (a block end plus a blank line).
    stream = MIXED_STREAM + MIXED_STREAM.replace(b"\n", b"\r\n") + OPENAI_STREAM
    expected = decode_all([stream])
    assert b"".join(e.raw for e in expected) == stream
    for _ in range(300):
        events = decode_all(random_chunks(stream, rng))
        assert b"".join(e.raw for e in events) == stream
        assert events == expected


def reference_split(data: bytes) -> list[bytes]:
    """Obvious line-by-line splitter: raws of the blocks, then the unfinished tail if any."""
    blocks: list[bytes] = []
    current = b""
    has_fields = False
    pos = 0
    while pos < len(data):
        ends = [i for i in (data.find(b"\r", pos), data.find(b"\n", pos)) if i != -1]
        if not ends:
            current += data[pos:]
            break
        eol = min(ends)
        after = eol + 2 if data[eol : eol + 2] == b"\r\n" else eol + 1
        current += data[pos:after]
        if eol > pos:
            has_fields = True
        elif has_fields:
            blocks.append(current)
            current, has_fields = b"", False
        pos = after
    if current.strip():
        blocks.append(current)
    elif not current and data.endswith(b"\r") and blocks and not blocks[-1].strip():
        # The decoder holds a block ending in "\r" until flush, which drops whitespace.
        blocks.pop()
    return blocks


def test_random_streams_match_a_line_by_line_reference() -> None:
    rng = random.Random(7)
    alphabet = (b"\r", b"\n", b"\r\n", b"data: x", b":", b"event:e", b" ")
    for _ in range(400):
        stream = b"".join(rng.choices(alphabet, k=rng.randint(0, 40)))
        events = decode_all(random_chunks(stream, rng))
        assert [e.raw for e in events] == reference_split(stream), stream


def test_crlf_line_ends() -> None:
    events = decode_all([b"event: x\r\ndata: 1\r\ndata: 2\r\n\r\ndata: 3\r\n\r\n"])
    assert events == [
        SSEEvent(b"event: x\r\ndata: 1\r\ndata: 2\r\n\r\n", "x", "1\n2"),
        SSEEvent(b"data: 3\r\n\r\n", None, "3"),
    ]


def test_cr_line_ends() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\rdata: 2\r\rdata: 3\r\r") == [
        SSEEvent(b"data: 1\rdata: 2\r\r", None, "1\n2")
    ]
    # The final "\r" might still be the start of "\r\n", so that block waits for more bytes.
    assert decoder.pending == len(b"data: 3\r\r")
    assert decoder.flush() == [SSEEvent(b"data: 3\r\r", None, "3")]


def test_cr_split_from_lf_across_chunks() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\r\n\r") == []
    assert decoder.feed(b"\ndata: 2\r") == [SSEEvent(b"data: 1\r\n\r\n", None, "1")]
    assert decoder.feed(b"\n\r") == []
    assert decoder.feed(b"\n") == [SSEEvent(b"data: 2\r\n\r\n", None, "2")]
    assert decoder.pending == 0


def test_cr_then_something_else_ends_the_block() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\r\r") == []
    assert decoder.feed(b"d") == [SSEEvent(b"data: 1\r\r", None, "1")]
    assert decoder.feed(b"ata: 2\r\r\n") == [SSEEvent(b"data: 2\r\r\n", None, "2")]


def test_comments_and_unknown_fields_stay_in_raw_only() -> None:
    raw = b": x-usage-cost 0.1\nid: 3\nretry: 5\nfoo: bar\nevent: e\n:data: no\n\n"
    assert decode_all([raw]) == [SSEEvent(raw, "e", None)]


def test_data_field_value_rules() -> None:
    events = decode_all([b"data:a\ndata: b\ndata:  c\ndata\ndata:\n\n"])
    assert events[0].data == "a\nb\n c\n\n"


def test_multi_line_data() -> None:
    raw = b'data: {"a":\ndata:  1}\n\n'
    assert decode_all([raw]) == [SSEEvent(raw, None, '{"a":\n 1}')]


def test_invalid_utf8_is_replaced() -> None:
    assert decode_all([b"data: \xff\xfe ok\n\n"])[0].data == "\ufffd\ufffd ok"


def test_flush_returns_unterminated_tail() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b\nevent: x\n") == [SSEEvent(b"data: a\n\n", None, "a")]
    assert decoder.flush() == [SSEEvent(b"data: b\nevent: x\n", "x", "b")]
    assert decoder.flush() == []


def test_flush_drops_whitespace_only_tail() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\n\r\n \n") == [SSEEvent(b"data: a\n\n", None, "a")]
    assert decoder.pending == 4
    assert decoder.flush() == []
    assert decoder.pending == 0


def test_blank_lines_before_a_block_belong_to_it() -> None:
    assert decode_all([b"\n\r\n\rdata: x\n\n"]) == [SSEEvent(b"\n\r\n\rdata: x\n\n", None, "x")]


def test_max_buffer_overflow() -> None:
    decoder = SSEDecoder(max_buffer=16)
    assert decoder.feed(b"data: 0123456789") == []
    with pytest.raises(SSEBufferOverflow):
        decoder.feed(b"abc")
    assert issubclass(SSEBufferOverflow, ValueError)


def test_max_buffer_counts_only_the_unfinished_tail() -> None:
    decoder = SSEDecoder(max_buffer=16)
    long_event = b"data: " + b"x" * 100 + b"\n\n"
    assert len(decoder.feed(long_event + b"data: 1")) == 1
    assert len(decoder.feed(b"\n\n" + long_event + b"data: 2")) == 2
    with pytest.raises(SSEBufferOverflow):
        decoder.feed(b"3" * 10)
    with pytest.raises(SSEBufferOverflow):
        SSEDecoder(max_buffer=16).feed(b"\n" * 17)


def test_long_event_in_many_chunks() -> None:
    payload = b"data: " + b"y" * 50_000 + b"\n\n"
    events = decode_all([payload[i : i + 7] for i in range(0, len(payload), 7)])
    assert events == [SSEEvent(payload, None, "y" * 50_000)]


def test_comment() -> None:
    assert comment("x-usage-cost 0.0012") == b": x-usage-cost 0.0012\n\n"
    assert decode_all([comment("x") + b"data: 1\n\n"])[0] == SSEEvent(b": x\n\n", None, None)
    with pytest.raises(ValueError):
        comment("a\ndata: injected")
