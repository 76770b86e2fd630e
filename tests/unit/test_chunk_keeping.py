"""The fast checks of which stream chunks may be kept unparsed agree with the plain rule."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.apis.chunk_keeping import (
    CHOICES,
    USAGE,
    USAGE_NULL_END,
    all_keepable,
    chunk_datas,
    keepable_prefix,
    run_datas,
)

# Pieces an OpenAI chunk's inner part is made of, odd ones included.
PIECES = [
    b'"id":"c1"', b'"model":"gpt"', b'"choices":[{"delta":{"content":"hi"}}]', b'"choices":[]',
    b'"usage":null', b'"usage":{"prompt_tokens":3}', b'"x":"usage"', b'"choices":1',
    b'"\\u0075sage":{}', b'"note":"\\"usage\\":null"',
]  # fmt: skip
inners = st.lists(st.lists(st.sampled_from(PIECES), max_size=5).map(b",".join), max_size=8)


def feed_keeps(data: str) -> bool:
    """The tracker's per-chunk rule in ``OpenAIStreamTracker.feed``, on decoded data."""
    return data[0] == "{" and CHOICES in data and data.count(USAGE) == data.endswith(USAGE_NULL_END)


def run_of(parts: list[bytes]) -> bytes:
    return b"".join(b"data: {" + inner + b"}\n\n" for inner in parts)


@given(inners)
def test_keepable_prefix_is_feeds_rule(parts: list[bytes]) -> None:
    expected = 0
    for inner in parts:
        if not feed_keeps("{" + inner.decode() + "}"):
            break
        expected += 1
    assert keepable_prefix(parts) == expected


@given(inners)
def test_all_keepable_only_says_yes_when_every_chunk_is_keepable(parts: list[bytes]) -> None:
    run = run_of(parts)
    if all_keepable(run, 0, len(run), parts):
        assert keepable_prefix(parts) == len(parts)


def test_all_keepable_says_yes_for_ordinary_runs() -> None:
    plain = [b'"choices":[{"delta":{"content":"a"}}]'] * 3
    with_null = [p + b',"usage":null' for p in plain]
    for parts in (plain, with_null):
        assert all_keepable(run_of(parts), 0, len(run_of(parts)), parts)
    mixed = [*plain, with_null[0]]
    assert not all_keepable(run_of(mixed), 0, len(run_of(mixed)), mixed)  # the plain rule decides
    assert keepable_prefix(mixed) == 4


@given(inners)
def test_run_datas_and_chunk_datas_give_each_chunk_back(parts: list[bytes]) -> None:
    if not parts:
        return
    datas = [b"{" + inner + b"}" for inner in parts]
    assert run_datas(run_of(parts)) == datas
    assert list(chunk_datas(["{}", run_of(parts)])) == ["{}", *datas]
