"""Asyncio load the compiled tools cannot make: a fixed-rate open loop, and streaming probes.

Run it in a process pinned to the load generator's core (``bench.run`` pins itself), on uvloop.

* ``open_loop``: requests start on a fixed schedule whether or not earlier ones finished (a
  new keep-alive connection is opened when none is idle), so a slow server meets a queue
  instead of a politely waiting client. Latency runs from the actual send to the last body
  byte; ``lag`` (actual send minus scheduled send) shows the generator kept its schedule.
* ``run_streams``: streams back to back on keep-alive connections
  (``bench/streamclient.py``), counting ``data:`` events as they arrive: time to the first
  one, and events per second over whole streams.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.streamclient import StreamConnection, StreamSample
from bench.upstream import with_knobs


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# -- open loop over raw HTTP/1.1 keep-alive connections ----------------------------------------


class RawClient:
    """A minimal HTTP/1.1 client that sends one prebuilt request over pooled connections."""

    def __init__(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        lines = [f"POST {parts.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines += [f"Content-Length: {len(body)}", "", ""]
        self.request = "\r\n".join(lines).encode() + body
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def once(self) -> int:
        """Send the request, read the whole answer; returns the status."""
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self.opened += 1
        writer.write(self.request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lower.index(b"\r\n", at + 2)
            await reader.readexactly(int(lower[at + 17 : end]))
        else:  # chunked
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        if b"\r\nconnection: close" in lower:
            writer.close()
        else:
            self._idle.append((reader, writer))
        return status

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


@dataclass
class OpenLoopResult:
    rate: float  # scheduled requests per second
    seconds: float
    sent: int
    completed: int
    achieved_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    errors: int
    lag_p99_ms: float  # how late the generator sent, at p99
    connections: int


async def open_loop(
    url: str, body: bytes, headers: dict[str, str], *, rate: float, seconds: float
) -> OpenLoopResult:
    client = RawClient(url, body, headers)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    lags: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        nonlocal errors
        start = loop.time()
        lags.append(start - scheduled)
        t0 = time.perf_counter()
        try:
            status = await client.once()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            return
        latencies.append(time.perf_counter() - t0)
        statuses[status] += 1

    n = int(rate * seconds)
    t0 = loop.time() + 0.02
    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    elapsed = loop.time() - t0
    client.close()
    ms = [x * 1000 for x in latencies]
    return OpenLoopResult(
        rate=rate,
        seconds=round(elapsed, 3),
        sent=n,
        completed=len(latencies),
        achieved_rps=len(latencies) / elapsed,
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        max_ms=max(ms, default=float("nan")),
        non_2xx=sum(c for s, c in statuses.items() if not 200 <= s < 300),
        errors=errors,
        lag_p99_ms=percentile([x * 1000 for x in lags], 99),
        connections=client.opened,
    )


# -- streaming -----------------------------------------------------------------------------------


@dataclass
class StreamResult:
    streams: int
    concurrency: int
    chunks_per_stream: int
    events: int
    seconds: float
    chunks_per_s: float  # events delivered per wall-clock second, all streams together
    ttfc_p50_ms: float
    ttfc_p99_ms: float
    bad: int  # non-200, or no [DONE], or a wrong event count
    missing_cost: int
    samples: list[StreamSample] = field(default_factory=list, repr=False)


async def run_streams(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    chunks: int,
    chunk_delay_ms: float,
    concurrency: int,
    seconds: float,
    min_streams: int = 1,
    expect_cost: bool = False,
) -> StreamResult:
    """Run streams back to back on ``concurrency`` clients for ``seconds`` (at least
    ``min_streams`` in all)."""
    h = headers
    body = with_knobs(body, chunks=chunks, chunk_delay_ms=chunk_delay_ms)
    expected = chunks + 3  # role chunk, content chunks, finish chunk, [DONE]
    samples: list[StreamSample] = []
    warm = await StreamConnection.open(url, body, h)
    await warm.stream()  # warm the upstream (and the gateway's route to it)
    warm.close()
    t0 = time.perf_counter()
    deadline = t0 + seconds

    async def worker() -> None:
        conn = await StreamConnection.open(url, body, h)
        try:
            while time.perf_counter() < deadline or len(samples) < min_streams:
                if conn.transport is None or conn.transport.is_closing():
                    conn = await StreamConnection.open(url, body, h)
                samples.append(await conn.stream())
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    events = sum(s.events for s in samples)
    ttfc = [s.ttfc * 1000 for s in samples]
    bad = sum(1 for s in samples if s.status != 200 or not s.done or s.events != expected)
    return StreamResult(
        streams=len(samples),
        concurrency=concurrency,
        chunks_per_stream=expected,
        events=events,
        seconds=round(wall, 3),
        chunks_per_s=events / wall,
        ttfc_p50_ms=statistics.median(ttfc),
        ttfc_p99_ms=percentile(ttfc, 99),
        bad=bad,
        missing_cost=sum(1 for s in samples if not s.cost_comment) if expect_cost else 0,
        samples=samples,
    )
