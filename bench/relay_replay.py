"""The relay's own Python work per event, without I/O: a recorded stream replayed through
what the proxy does with each read (``tracker.mark``, ``relay_read.take``, ``feed`` for the
rest), in reads of a fixed number of events.

    python -m bench.relay_replay [--chunks 2000] [--per-read 25] [--repeat 15]

It times one stream at a time on one core, so it is steady where the live relay figures move
with the box's scheduling (how many events each read carries depends on who runs when); it
does not see syscalls, the event loop or aiohttp.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.upstream import stream_chunks
from gateway.apis.openai import ChatCompletions
from gateway.apis.tracking import KeptBudget
from gateway.codecs.sse import SSEDecoder
from gateway.edge.relay_read import take

PAYLOAD = {"model": "gpt-bench", "messages": [], "stream": True,
           "stream_options": {"include_usage": True}}  # fmt: skip


def replay(reads: list[bytes], budget: KeptBudget) -> None:
    endpoint = ChatCompletions()
    decoder, tracker = SSEDecoder(), endpoint.new_tracker(budget)
    for data in reads:
        tracker.mark()
        _, events = take(decoder, tracker, endpoint, data, True)
        for event in events:
            tracker.feed(event)
    tracker.release()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.relay_replay", description=__doc__.splitlines()[0])
    p.add_argument("--chunks", type=int, default=2000, help="content chunks in the stream")
    p.add_argument("--per-read", type=int, default=25, help="events per read")
    p.add_argument("--repeat", type=int, default=15)
    args = p.parse_args(argv)
    chunks = stream_chunks(PAYLOAD, args.chunks, 20)
    k = args.per_read
    reads = [b"".join(chunks[i : i + k]) for i in range(0, len(chunks), k)]
    budget = KeptBudget()
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        replay(reads, budget)
        times.append((time.perf_counter() - t0) / len(chunks) * 1e6)
    print(f"{len(chunks)} events in reads of {k}: {statistics.median(times):.3f} µs per event "
          f"(median of {args.repeat}; min {min(times):.3f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
