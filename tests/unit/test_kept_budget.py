"""What stream trackers keep unparsed is bounded per process (KeptBudget), not per stream:
a long stream is parsed at marks only while the process keeps too much, or past a ceiling."""

from __future__ import annotations

from gateway.apis.openai_stream import OpenAIStreamTracker
from gateway.apis.tracking import KeptBudget
from tests.support.plain_runs import chunk_line, split_blocks


def feed(tracker: OpenAIStreamTracker, words: list[str]) -> int:
    """Feed one chunk per word, a mark before each; returns the bytes fed."""
    size = 0
    for word in words:
        tracker.mark()
        for event in split_blocks(chunk_line(word)):
            tracker.feed(event)
            size += len(event.raw)
    return size


def reference(words: list[str]) -> str:
    tracker = OpenAIStreamTracker()
    tracker.lazy = False
    feed(tracker, words)
    return tracker.text


WORDS = [f"w{i} " for i in range(40)]


def test_a_long_stream_is_left_unparsed_while_the_process_keeps_little() -> None:
    budget = KeptBudget(limit=10**6, ceiling=10**6)
    tracker = OpenAIStreamTracker(budget)
    tracker.LAZY_LIMIT = 1000
    fed = feed(tracker, WORDS)
    first = len(split_blocks(chunk_line(WORDS[0]))[0].raw)  # read at once: the model
    assert budget.used == fed - first > 4 * tracker.LAZY_LIMIT  # all kept, past its limit
    assert tracker.text == reference(WORDS)
    assert budget.used == 0  # reading the text parsed it all


def test_past_its_limit_a_tracker_parses_at_a_mark_once_the_process_keeps_too_much() -> None:
    budget = KeptBudget(limit=3000, ceiling=10**6)
    a, b = OpenAIStreamTracker(budget), OpenAIStreamTracker(budget)
    a.LAZY_LIMIT = b.LAZY_LIMIT = 1000
    feed(a, WORDS[:15])
    kept_a = a._kept_size
    assert 1000 < kept_a <= 3000 and budget.used == kept_a  # over its limit, budget roomy
    feed(b, WORDS[:15])
    assert budget.used == kept_a + b._kept_size > 3000
    a.mark()  # now the process keeps too much: a parses what it kept
    assert a._kept_size == 0 and budget.used == b._kept_size
    feed(a, WORDS[15:])
    assert a.text == reference(WORDS)


def test_a_tracker_past_the_ceiling_parses_whatever_the_process_keeps() -> None:
    budget = KeptBudget(limit=10**6, ceiling=2000)
    tracker = OpenAIStreamTracker(budget)
    tracker.LAZY_LIMIT = 1000
    feed(tracker, WORDS)
    assert 0 < tracker._kept_size <= 2000 + len(chunk_line(WORDS[-1]))
    assert budget.used == tracker._kept_size
    assert tracker.text == reference(WORDS)


def test_release_takes_a_finished_stream_out_of_the_budget_once() -> None:
    budget = KeptBudget()
    tracker, other = OpenAIStreamTracker(budget), OpenAIStreamTracker(budget)
    feed(tracker, WORDS)
    feed(other, WORDS[:5])
    tracker.release()
    tracker.release()
    assert budget.used == other._kept_size > 0
    assert tracker.text == reference(WORDS)  # still readable after its release
    assert budget.used == other._kept_size
    other.release()
    assert budget.used == 0


def test_a_truncate_gives_back_what_it_forgets() -> None:
    budget = KeptBudget(limit=10**6, ceiling=10**6)
    tracker = OpenAIStreamTracker(budget)
    feed(tracker, WORDS[:10])
    mark = tracker.mark()
    kept = budget.used
    feed(tracker, WORDS[10:])
    assert budget.used > kept
    tracker.truncate(mark)
    assert budget.used == tracker._kept_size == kept
    assert tracker.text == reference(WORDS[:10])
