from __future__ import annotations

import json
import random

import orjson
import pytest

from gateway.apis.openai_stream import OpenAIStreamTracker
from gateway.apis.openai_usage import usage_from_openai, usage_from_openai_body
from gateway.apis.tracking import EventKind, TrackerMark
from gateway.codecs.sse import SSEDecoder, SSEEvent
from pricing.usage import Usage


def data_event(payload: object) -> SSEEvent:
    data = orjson.dumps(payload).decode()
    return SSEEvent(raw=f"data: {data}\n\n".encode(), event=None, data=data)


def test_chat_usage_with_cached_and_reasoning_tokens() -> None:
    usage = {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0},
    }
    result = usage_from_openai(usage)
    assert result == Usage(
        input_tokens=86, output_tokens=300, cache_read_tokens=1920, reasoning_tokens=192
    )
    assert result.total_tokens == 2306


def test_embeddings_usage() -> None:
    assert usage_from_openai({"prompt_tokens": 8, "total_tokens": 8}) == Usage(input_tokens=8)


@pytest.mark.parametrize(
    "usage",
    [
        None,
        [],
        "12",
        12,
        {},
        {"completion_tokens": 5},
        {"prompt_tokens": "8"},
        {"prompt_tokens": 8.5},
        {"prompt_tokens": True},
        {"prompt_tokens": 10**15},
        {"prompt_tokens": 10, "completion_tokens": 10**15},
        {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 99}},
        {"prompt_tokens": None},
    ],
)
def test_no_usage(usage: object) -> None:
    assert usage_from_openai(usage) is None


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 10, "completion_tokens": None}, Usage(input_tokens=10)),
        ({"prompt_tokens": 10, "completion_tokens": True}, None),
        ({"prompt_tokens": 10, "completion_tokens": 2.5}, None),
        ({"prompt_tokens": 10, "completion_tokens": -3}, None),
        ({"prompt_tokens": 10, "completion_tokens": "4"}, None),
        ({"prompt_tokens": -1, "completion_tokens": 4}, None),
        ({"prompt_tokens": 10.0, "completion_tokens": 50.0}, Usage(input_tokens=10,
                                                                  output_tokens=50)),
        (
            {
                "prompt_tokens": 10,
                "prompt_tokens_details": None,
                "completion_tokens": 4,
                "completion_tokens_details": None,
            },
            Usage(input_tokens=10, output_tokens=4),
        ),
        (
            {
                "prompt_tokens": 10,
                "prompt_tokens_details": {"cached_tokens": None},
                "completion_tokens": 4,
                "completion_tokens_details": [],
            },
            Usage(input_tokens=10, output_tokens=4),
        ),
        ({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 99}}, None),
        ({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": -5}}, None),
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 4,
                "completion_tokens_details": {"reasoning_tokens": 9},
            },
            Usage(input_tokens=10, output_tokens=4, reasoning_tokens=4),
        ),
        (
            {"prompt_tokens": 10, "completion_tokens_details": {"reasoning_tokens": False}},
            None,
        ),
    ],
)
def test_odd_values_make_a_report_unreadable_but_integral_floats_are_counts(
    usage: object, expected: Usage | None
) -> None:
    assert usage_from_openai(usage) == expected


def test_body() -> None:
    body = orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
        }
    )
    assert usage_from_openai_body(body) == (
        Usage(input_tokens=12, output_tokens=2),
        "gpt-4o-mini-2024-07-18",
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", (None, None)),
        (b"{not json", (None, None)),
        (b"\xff\xfe", (None, None)),
        (b"[1, 2]", (None, None)),
        (b'"text"', (None, None)),
        (b'{"model": 5, "usage": {"prompt_tokens": 1}}', (Usage(input_tokens=1), None)),
        (b'{"model": "m", "usage": null}', (None, "m")),
        (b'{"model": "m", "usage": {"prompt_tokens": 1' + b"0" * 40 + b"}}", (None, "m")),
    ],
)
def test_bad_bodies(body: bytes, expected: tuple[Usage | None, str | None]) -> None:
    assert usage_from_openai_body(body) == expected


def chat_chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "created": 1718000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }


def test_streamed_chat() -> None:
    usage_chunk = chat_chunk({})
    usage_chunk["choices"] = []
    usage_chunk["usage"] = {
        "prompt_tokens": 20,
        "completion_tokens": 3,
        "total_tokens": 23,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    stream = b"".join(
        [
            data_event(chat_chunk({"role": "assistant", "content": "", "refusal": None})).raw,
            data_event(chat_chunk({"content": "Hel"})).raw,
            b": keep-alive\n\n",
            data_event(chat_chunk({"content": "lo ✓"})).raw,
            data_event(chat_chunk({}, finish="stop")).raw,
            data_event(usage_chunk).raw,
            b"data: [DONE]\n\n",
        ]
    )
    decoder = SSEDecoder()
    events = [e for i in range(0, len(stream), 13) for e in decoder.feed(stream[i : i + 13])]
    tracker = OpenAIStreamTracker()
    kinds = [tracker.feed(event) for event in events]
    assert kinds == [
        EventKind.CHUNK,
        EventKind.CHUNK,
        EventKind.OTHER,
        EventKind.CHUNK,
        EventKind.CHUNK,
        EventKind.USAGE_ONLY,
        EventKind.DONE,
    ]
    assert tracker.text == "Hello ✓"
    assert tracker.chunks == 4
    assert tracker.model == "gpt-4o-mini-2024-07-18"
    assert tracker.usage == Usage(input_tokens=20, output_tokens=3)


def test_stream_without_usage() -> None:
    tracker = OpenAIStreamTracker()
    assert tracker.feed(data_event(chat_chunk({"content": "a"}))) is EventKind.CHUNK
    assert tracker.usage is None
    assert tracker.text == "a"


def arguments_delta(arguments: str) -> dict[str, object]:
    return {"index": 0, "function": {"arguments": arguments}}


def test_reasoning_and_tool_call_text() -> None:
    tracker = OpenAIStreamTracker()
    tool_call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    tracker.feed(data_event(chat_chunk({"reasoning_content": "Think. "})))
    tracker.feed(data_event(chat_chunk({"content": None, "tool_calls": [tool_call]})))
    tracker.feed(data_event(chat_chunk({"tool_calls": [arguments_delta('{"c')]})))
    assert tracker.text == 'Think. {"c'
    tracker.feed(data_event(chat_chunk({"tool_calls": [arguments_delta('":1}')]})))
    assert tracker.text == 'Think. {"c":1}'
    assert tracker.chunks == 4


def test_legacy_completions_stream() -> None:
    tracker = OpenAIStreamTracker()
    for text in ["Once", " upon", " a time"]:
        chunk = {
            "id": "cmpl-1",
            "object": "text_completion",
            "model": "gpt-3.5-turbo-instruct",
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": None}],
        }
        assert tracker.feed(data_event(chunk)) is EventKind.CHUNK
    final = {
        "id": "cmpl-1",
        "object": "text_completion",
        "model": "gpt-3.5-turbo-instruct",
        "choices": [],
        "usage": {"prompt_tokens": 4, "completion_tokens": 3},
    }
    assert tracker.feed(data_event(final)) is EventKind.USAGE_ONLY
    assert tracker.text == "Once upon a time"
    assert tracker.chunks == 3
    assert tracker.model == "gpt-3.5-turbo-instruct"
    assert tracker.usage == Usage(input_tokens=4, output_tokens=3)


def test_usage_on_every_chunk_last_wins() -> None:
    tracker = OpenAIStreamTracker()
    for n in (1, 2, 3):
        chunk = chat_chunk({"content": "x"})
        chunk["usage"] = {"prompt_tokens": 5, "completion_tokens": n}
        assert tracker.feed(data_event(chunk)) is EventKind.CHUNK
    assert tracker.usage == Usage(input_tokens=5, output_tokens=3)


def test_first_non_empty_model_wins() -> None:
    tracker = OpenAIStreamTracker()
    first = {"id": "", "model": "", "choices": [], "prompt_filter_results": []}
    assert tracker.feed(data_event(first)) is EventKind.CHUNK
    tracker.feed(data_event(chat_chunk({"content": "a"}) | {"model": "gpt-4o"}))
    tracker.feed(data_event(chat_chunk({"content": "b"}) | {"model": "other"}))
    assert tracker.model == "gpt-4o"
    assert tracker.chunks == 2


@pytest.mark.parametrize(
    "event",
    [
        SSEEvent(b": ping\n\n", None, None),
        SSEEvent(b"event: x\n\n", "x", None),
        SSEEvent(b"data: hello\n\n", None, "hello"),
        SSEEvent(b"data: {oops\n\n", None, "{oops"),
        SSEEvent(b"data: [{}]\n\n", None, "[{}]"),
        SSEEvent(b"data: {}\n\n", None, "{}"),
        SSEEvent(b'data: {"choices": null}\n\n', None, '{"choices": null}'),
        SSEEvent(
            b'data: {"error": {"message": "overloaded"}}\n\n',
            None,
            '{"error": {"message": "overloaded"}}',
        ),
        SSEEvent(b'event: error\ndata: {"choices": []}\n\n', "error", '{"choices": []}'),
    ],
)
def test_other_events(event: SSEEvent) -> None:
    tracker = OpenAIStreamTracker()
    assert tracker.feed(event) is EventKind.OTHER
    assert tracker.chunks == 0
    assert tracker.text == ""


def test_malformed_choices_never_raise() -> None:
    tracker = OpenAIStreamTracker()
    chunk = {
        "model": 3,
        "choices": [
            None,
            1,
            {"delta": None},
            {
                "delta": {
                    "content": 5,
                    "tool_calls": [None, {"function": None}, {"function": {"arguments": 7}}],
                }
            },
        ],
        "usage": {"prompt_tokens": "x"},
    }
    assert tracker.feed(data_event(chunk)) is EventKind.CHUNK
    assert tracker.chunks == 1
    assert (tracker.text, tracker.model, tracker.usage) == ("", None, None)
    empty: dict[str, object] = {"choices": [], "usage": None}
    assert tracker.feed(data_event(empty)) is EventKind.CHUNK


def test_truncate_forgets_what_came_after_the_mark() -> None:
    tracker = OpenAIStreamTracker()
    tracker.feed(data_event(chat_chunk({"content": "kept "})))
    assert tracker.text == "kept "  # joined once already: truncate must still cut right
    tracker.feed(data_event(chat_chunk({"content": "too"})))
    mark = tracker.mark()
    tracker.feed(data_event(chat_chunk({"content": " lost"})))
    usage_chunk = chat_chunk({})
    usage_chunk["choices"] = []
    usage_chunk["usage"] = {"prompt_tokens": 3, "completion_tokens": 3}
    tracker.feed(data_event(usage_chunk))
    assert (tracker.text, tracker.chunks) == ("kept too lost", 3)
    tracker.truncate(mark)
    assert (tracker.text, tracker.chunks, tracker.usage) == ("kept too", 2, None)
    tracker.truncate(OpenAIStreamTracker().mark())
    assert (tracker.text, tracker.chunks) == ("", 0)
    assert tracker.model == "gpt-4o-mini-2024-07-18"


class EagerTracker(OpenAIStreamTracker):
    lazy = False


def random_event(rng: random.Random) -> SSEEvent:
    kind = rng.random()
    if kind < 0.7:  # an ordinary chunk, as OpenAI writes it: kept unparsed
        delta = {"content": rng.choice(["a", "bc", " def", "", "é"])}
        if rng.random() < 0.1:
            delta = {"tool_calls": [{"function": {"arguments": '{"x":1}'}}]}
        return data_event(chat_chunk(delta))
    if kind < 0.85:  # the same, written with spaces: parsed at once
        raw = orjson.loads(orjson.dumps(chat_chunk({"content": rng.choice(["X", "YZ"])})))
        text = json.dumps(raw)
        return SSEEvent(f"data: {text}\n\n".encode(), None, text)
    if kind < 0.95:
        usage_chunk = chat_chunk({})
        usage_chunk["choices"] = []
        usage_chunk["usage"] = {"prompt_tokens": rng.randint(1, 9), "completion_tokens": 2}
        return data_event(usage_chunk)
    return SSEEvent(b": ping\n\n", None, None)


@pytest.mark.parametrize("seed", range(40))
def test_lazy_tracking_matches_eager_tracking(seed: int) -> None:
    """Random feeds, marks, reads and truncates (to the latest mark or an earlier one): the
    lazy tracker reports exactly what parsing every chunk at once reports."""
    rng = random.Random(seed)
    lazy, eager = OpenAIStreamTracker(), EagerTracker()
    lazy.LAZY_LIMIT = rng.choice([10**9, 600])  # also parse at marks past a small limit
    marks: list[tuple[TrackerMark, TrackerMark]] = []
    for _ in range(300):
        op = rng.random()
        if op < 0.75:
            event = random_event(rng)
            assert lazy.feed(event) is eager.feed(event)
        elif op < 0.85:
            marks.append((lazy.mark(), eager.mark()))
        elif op < 0.93:
            assert (lazy.text, lazy.chunks) == (eager.text, eager.chunks)
        elif marks:
            index = len(marks) - 1 if rng.random() < 0.7 else rng.randrange(len(marks))
            lazy_mark, eager_mark = marks[index]
            del marks[index + 1 :]  # later marks point past the cut
            lazy.truncate(lazy_mark)
            eager.truncate(eager_mark)
        assert lazy.usage == eager.usage and lazy.model == eager.model
    assert (lazy.text, lazy.chunks) == (eager.text, eager.chunks)


def test_a_mark_past_the_lazy_limit_parses_what_was_kept() -> None:
    tracker = OpenAIStreamTracker()
    tracker.LAZY_LIMIT = 100
    for _ in range(5):
        tracker.feed(data_event(chat_chunk({"content": "ab"})))
    assert tracker._kept  # kept unparsed so far
    tracker.mark()
    assert not tracker._kept and tracker._text_length == 10
