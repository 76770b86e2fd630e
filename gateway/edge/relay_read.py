"""One read of an upstream stream, split between the fast path and the per-event path. Pure.

The relay hands every read to ``take``. A run of ordinary chunks at its start (the usual
case: OpenAI writes every event but ``[DONE]`` as one ``data: {...}`` line) is taken whole by
the decoder and the tracker and rewritten with one replace; whatever follows comes back as
events, for the relay to feed, rewrite and act on one by one. Both ways give the same bytes
and the same tracker state (tests/unit/test_plain_runs.py).
"""

from __future__ import annotations

from gateway.apis.base import Endpoint, StreamTracker
from gateway.codecs.sse import PLAIN_FRAME, SSEDecoder, SSEEvent, plain_events


def take(
    decoder: SSEDecoder, tracker: StreamTracker, endpoint: Endpoint, chunk: bytes, strip: bool
) -> tuple[bytes, list[SSEEvent]]:
    """Feed ``chunk``: returns (the bytes to send for the events taken the fast way, the
    events left for the per-event way, in stream order after them)."""
    if endpoint.plain_runs:
        plain = decoder.feed_plain(chunk)
        if plain is not None:
            run, inners, rest = plain
            # The decoder first: if the rest overflows it, feed would have raised before the
            # tracker saw any of this read.
            after = decoder.feed(rest) if rest else []
            n = tracker.feed_plain(run, inners)
            if n == len(inners):
                taken, events = run, []
            else:
                size = sum(map(len, inners[:n])) + PLAIN_FRAME * n
                taken, events = run[:size], plain_events(inners[n:])
            events += after
            return (endpoint.rewrite_plain(taken, strip) if taken else b""), events
    return b"", decoder.feed(chunk)
