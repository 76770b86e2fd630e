"""Gateway memory under abandoned streams: a leak, or a high-water mark?

    python -m bench.abandoned_streams [--rounds 5] [--clients 50] [--pad 200000]
                                      [--out FILE] [--trace]

An abandoned stream is a client that asks for a big streaming chat completion, reads the
answer's headers, stops reading, and later hangs up (or never does). The gateway is expected to
bill such a stream ``partial``, release its hold and close its upstream connection, whether the
client hangs up (the write fails with a ConnectionError) or just sits there (the write is cut
after ``client_write_timeout``, 2 s here).

Starts redis-server, a small padded upstream (in this process: an OpenAI-compatible
``/v1/chat/completions`` whose every SSE event is preceded by a ``pad``-byte comment, ~70 events,
so ~14 MB a stream with the default pad) and ``python -m gateway serve`` (one worker). After a
warm-up of a few normal requests it reads the gateway's RSS (the baseline), then runs rounds:

1. ``clients`` stalled clients open streams at once (a raw socket with a 4 KiB receive buffer,
   the answer's headers read, nothing more);
2. after 1 s, half hang up abruptly (``transport.abort()``: a reset), the other half stay
   connected until the gateway cuts them;
3. once every request's record has settled (``GET /v1/requests/{id}``), a 2 s pause, then the
   gateway's VmRSS and VmHWM, its open file descriptors, the wallet's ``held``, how many records
   are ``partial`` and how many upstream streams are still open.

RSS that rises every round without bound is a leak; RSS that rises in the first round(s) and
then stays flat is the allocator keeping its high-water mark. ``--trace`` runs the gateway
under tracemalloc (a ``sitecustomize`` put on its PYTHONPATH dumps on SIGUSR1) and adds the
Python heap it still holds after a ``gc.collect()``: live memory, whatever the allocator keeps.
Writes ``bench/results/abandoned_streams.md`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench import stack
from gateway.apis.tokens import TokenCounter
from gateway.upstream.mock import answer
from tests.support import stalled_client
from tests.support.stalled_client import StalledClient

RESULTS = Path(__file__).resolve().parent / "results" / "abandoned_streams.md"
MODEL = "gpt-4o-mini"
PRICING = f"""\
version: abandoned-streams-1
models:
  {MODEL}: {{input: 0.15, output: 0.60, max_output_tokens: 1000}}
"""
WRITE_TIMEOUT = 2.0  # the gateway's client_write_timeout in this run
SETTLE_LIMIT = 60.0  # seconds a request may stay pending before the run fails
# The mock echoes the prompt, one event per word: 60 words -> ~70 events with role/finish/usage.
BIG_STREAM: dict[str, Any] = {
    "model": MODEL, "stream": True, "max_tokens": 500,
    "stream_options": {"include_usage": True},
    "messages": [{"role": "user", "content": ("tell me a long story " * 12).strip()}],
}  # fmt: skip
SMALL: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
# --trace: put on the gateway's PYTHONPATH, with PYTHONTRACEMALLOC=1. On SIGUSR1 the gateway
# collects garbage and appends a line to BENCH_TRACE_FILE: the bytes Python has allocated and
# still holds, the number of objects gc tracks, and the biggest growths since the first dump.
SITECUSTOMIZE = """\
import gc, json, os, signal, tracemalloc

_first = []


def _dump(signum, frame):
    gc.collect()
    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)])
    if not _first:
        _first.append(snap)
    top = [str(d) for d in snap.compare_to(_first[0], "lineno")[:5]]
    line = {"traced": tracemalloc.get_traced_memory()[0], "objects": len(gc.get_objects()),
            "top": top}
    with open(os.environ["BENCH_TRACE_FILE"], "a") as out:
        out.write(json.dumps(line) + "\\n")


if tracemalloc.is_tracing():
    signal.signal(signal.SIGUSR1, _dump)
"""


class PaddedUpstream:
    """An OpenAI-compatible chat completions endpoint: the mock provider's answer, each stream
    event preceded by an SSE comment of ``pad`` bytes (megabytes of stream, a few tokens)."""

    def __init__(self, pad: int) -> None:
        self.counter = TokenCounter()
        self.comment = b": " + b"p" * pad + b"\n\n" if pad else b""
        self.events = 0  # events in the last stream answered
        self.open = 0  # streams being written now
        self.completed = 0  # streams written to the end
        self.broken = 0  # streams whose reader (the gateway) went away
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        result = answer("/chat/completions", await request.read(), self.counter)
        if not result.headers["Content-Type"].startswith("text/event-stream"):
            return web.Response(status=result.status, body=result.chunks[0],
                                headers=result.headers)  # fmt: skip
        self.events = len(result.chunks)
        response = web.StreamResponse(status=result.status, headers=result.headers)
        await response.prepare(request)
        self.open += 1
        try:
            for chunk in result.chunks:
                if self.comment:
                    await response.write(self.comment)
                await response.write(chunk)
            await response.write_eof()
            self.completed += 1
        except ConnectionError:
            self.broken += 1
        finally:
            self.open -= 1
        return response


async def open_stalled(url: str, key: str, body: dict[str, Any]) -> StalledClient:
    """A client that asked for a stream, read its headers and reads nothing more."""
    client = await stalled_client.open_stalled(url, key, body)
    if client.status != 200:
        client.close()
        raise RuntimeError(f"stalled client: answered {client.status}")
    return client


def memory_mb(pid: int) -> tuple[float, float]:
    """The process's (VmRSS, VmHWM) in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024.0
    return values["VmRSS"], values["VmHWM"]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def streams_cut(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url + "/metrics") as r:
        text = await r.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("tollgate_streams_cut_total"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


async def settled(http: aiohttp.ClientSession, url: str, key: str, rid: str) -> dict[str, Any]:
    """The request's record once it is no longer pending (at most ``SETTLE_LIMIT`` s)."""
    auth = {"Authorization": f"Bearer {key}"}
    rec: dict[str, Any] = {}
    try:
        async with asyncio.timeout(SETTLE_LIMIT):
            while True:
                async with http.get(f"{url}/v1/requests/{rid}", headers=auth) as r:
                    rec = await r.json() if r.status == 200 else {"status": "pending"}
                if rec["status"] != "pending":
                    return rec
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise RuntimeError(f"{rid} still pending after {SETTLE_LIMIT:g} s: {rec}") from None


async def warm_up(http: aiohttp.ClientSession, url: str, key: str) -> None:
    """A few normal requests: plain ones, and padded streams read to the end."""
    auth = {"Authorization": f"Bearer {key}"}
    for body in (SMALL, SMALL, SMALL, BIG_STREAM, BIG_STREAM):
        async with http.post(url + "/v1/chat/completions", json=body, headers=auth) as r:
            await r.read()
            if r.status != 200:
                raise RuntimeError(f"warm-up: {r.status}")
            rid = r.headers["x-request-id"]
        await settled(http, url, key, rid)


@dataclass
class Round:
    n: int
    rss: float
    hwm: float
    partial: int
    total: int
    held: str
    settle_s: float
    cut: int  # streams the gateway cut this round (the write timeout)
    fds: int
    upstream_open: int
    traced_mb: float | None = None  # --trace: bytes Python holds after a gc, in MB
    objects: int | None = None  # --trace: objects gc tracks


def python_heap(pid: int, trace: Path | None) -> dict[str, Any]:
    """With --trace: ask the gateway for a tracemalloc/gc dump and wait for it (blocking)."""
    if trace is None:
        return {}

    def lines() -> list[str]:
        text = trace.read_text() if trace.exists() else ""
        return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]

    done = len(lines())
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while len(lines()) <= done:
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway wrote no tracemalloc dump")
        time.sleep(0.2)
    line: dict[str, Any] = orjson.loads(lines()[done])
    return line


async def one_round(n: int, clients: int, http: aiohttp.ClientSession, url: str, key: str,
                    account: str, pid: int, upstream: PaddedUpstream,
                    trace: Path | None) -> Round:  # fmt: skip
    cut_before = await streams_cut(http, url)
    stalled = await asyncio.gather(*(
        open_stalled(url + "/v1/chat/completions", key, BIG_STREAM) for _ in range(clients)
    ))  # fmt: skip
    await asyncio.sleep(1.0)  # every one of them is now blocked in a write
    hang_up = clients // 2
    for c in stalled[:hang_up]:
        c.close()
    started = time.monotonic()
    records = await asyncio.gather(*(settled(http, url, key, c.request_id) for c in stalled))
    settle_s = time.monotonic() - started
    for c in stalled[hang_up:]:
        c.close()  # cut by the gateway by now; let go of this side too
    await asyncio.sleep(2.0)
    rss, hwm = memory_mb(pid)
    wallet = await asyncio.to_thread(stack.wallet, url, account)
    partial = sum(1 for r in records if r["usage_source"] == "partial")
    bad = [r for r in records if r["status"] != "settled" or r["usage_source"] != "partial"]
    if bad:
        print(f"  round {n}: {len(bad)} record(s) not settled/partial, e.g. {bad[0]}",
              file=sys.stderr)  # fmt: skip
    heap = await asyncio.to_thread(python_heap, pid, trace)
    for growth in heap.get("top", []):
        print(f"  {growth}")
    return Round(n, rss, hwm, partial, len(records), wallet["held"], settle_s,
                 await streams_cut(http, url) - cut_before, open_fds(pid), upstream.open,
                 heap["traced"] / 2**20 if heap else None, heap.get("objects"))  # fmt: skip


async def run(rounds: int, clients: int, pad: int, scratch: Path,
              trace: Path | None) -> dict[str, Any]:  # fmt: skip
    upstream = PaddedUpstream(pad)
    await asyncio.to_thread(upstream.counter.warm)
    runner = web.AppRunner(upstream.app, access_log=None)
    await runner.setup()
    up_port = stack.free_port()
    await web.TCPSite(runner, "127.0.0.1", up_port).start()
    redis, gateway = None, None
    try:
        redis, redis_url = await asyncio.to_thread(stack.start_redis, scratch, None)
        config = stack.write_gateway_config(
            scratch, f"http://127.0.0.1:{up_port}", pricing=PRICING,
            extra=f"client_write_timeout: {WRITE_TIMEOUT}\n")
        if trace is not None:  # the gateway inherits these (and only it runs Python)
            (scratch / "site").mkdir()
            (scratch / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
            path = os.pathsep.join(filter(None, [str(scratch / "site"),
                                                 os.environ.get("PYTHONPATH")]))  # fmt: skip
            os.environ.update(PYTHONPATH=path, PYTHONTRACEMALLOC="1",
                              BENCH_TRACE_FILE=str(trace))  # fmt: skip
        gateway, url = await asyncio.to_thread(
            stack.start_gateway, scratch, None, config, redis_url, 1
        )
        account, key = await asyncio.to_thread(stack.provision, url, "100.00")
        # A few connections for the polling, so that open fds count the gateway's own.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4)) as http:
            await warm_up(http, url, key)
            await asyncio.sleep(2.0)
            rss, hwm = memory_mb(gateway.pid)
            held = (await asyncio.to_thread(stack.wallet, url, account))["held"]
            heap = await asyncio.to_thread(python_heap, gateway.pid, trace)
            base = Round(0, rss, hwm, 0, 0, held, 0.0, 0, open_fds(gateway.pid), upstream.open,
                         heap["traced"] / 2**20 if heap else None, heap.get("objects"))  # fmt: skip
            padding = upstream.events * len(upstream.comment) / 1e6
            traced = (
                ""
                if base.traced_mb is None
                else (f", Python heap {base.traced_mb:.1f} MB in {base.objects:,} objects")
            )
            print(f"baseline: RSS {rss:.1f} MB, HWM {hwm:.1f} MB{traced}; {upstream.events} "
                  f"events a stream, {padding:.1f} MB of padding")  # fmt: skip
            results = [base]
            for n in range(1, rounds + 1):
                r = await one_round(n, clients, http, url, key, account, gateway.pid, upstream,
                                    trace)  # fmt: skip
                traced = (
                    ""
                    if r.traced_mb is None
                    else (f", Python heap {r.traced_mb:.1f} MB in {r.objects:,} objects")
                )
                print(f"round {n}: RSS {r.rss:.1f} MB, HWM {r.hwm:.1f} MB, partial "
                      f"{r.partial}/{r.total}, held {r.held}, settled in {r.settle_s:.1f} s, "
                      f"cut {r.cut}, fds {r.fds}, upstream streams open {r.upstream_open}"
                      f"{traced}", flush=True)  # fmt: skip
                results.append(r)
        if not gateway.alive():
            raise RuntimeError(f"the gateway died:\n{gateway.tail()}")
        return {"rounds": results, "events": upstream.events, "pad": pad, "clients": clients,
                "completed": upstream.completed, "broken": upstream.broken}  # fmt: skip
    finally:
        if gateway is not None:
            await asyncio.to_thread(gateway.stop)
        if redis is not None:
            await asyncio.to_thread(redis.stop)
        await runner.cleanup()


def report(r: dict[str, Any], command: str) -> str:
    rows: list[Round] = r["rounds"]
    base = rows[0]
    stream_mb = r["events"] * (r["pad"] + 4) / 1e6
    lines = [
        "# Gateway memory under abandoned streams (`python -m bench.abandoned_streams`)",
        "",
        f"    {command}",
        "",
        f"One gateway worker (`client_write_timeout: {WRITE_TIMEOUT:g}`), Redis, a padded "
        f"upstream: {r['events']} SSE events a stream, each after a {r['pad']:,}-byte comment "
        f"(~{stream_mb:.0f} MB a stream). Each round: {r['clients']} stalled clients (4 KiB "
        f"receive buffer, headers read, nothing more); after 1 s half hang up (reset), the "
        "other half stay until the gateway cuts them; once every record has settled, 2 s, "
        "then the numbers. Round 0 is the baseline, after a warm-up of 3 plain requests and "
        "2 padded streams read to the end.",
        "",
        "| Round | VmRSS MB | VmHWM MB | RSS - baseline MB | Records partial/total | Held "
        "| Cut by write timeout | Settled in s | Open fds | Upstream streams open |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    traced = base.traced_mb is not None
    if traced:
        lines[-2] += " Python heap MB (tracemalloc) | gc objects |"
        lines[-1] += " ---: | ---: |"
    for x in rows:
        lines.append(
            f"| {x.n} | {x.rss:.1f} | {x.hwm:.1f} | {x.rss - base.rss:+.1f} | "
            f"{x.partial}/{x.total} | {x.held} | {x.cut} | {x.settle_s:.1f} | {x.fds} | "
            f"{x.upstream_open} |" + (f" {x.traced_mb:.1f} | {x.objects:,} |" if traced else "")
        )
    lines += [
        "",
        f"Upstream streams over the run: {r['completed']} written to the end (the warm-up's), "
        f"{r['broken']} ended by the gateway going away.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--pad", type=int, default=200_000, help="bytes of comment per event")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the Markdown report")
    parser.add_argument("--trace", action="store_true",
                        help="run the gateway under tracemalloc and report its Python heap "
                             "after each round (slower)")  # fmt: skip
    args = parser.parse_args()
    command = (f"python -m bench.abandoned_streams --rounds {args.rounds} "
               f"--clients {args.clients} --pad {args.pad}"
               + (" --trace" if args.trace else ""))  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tollgate-abandoned-") as scratch:
        trace = Path(scratch) / "trace.jsonl" if args.trace else None
        result = asyncio.run(run(args.rounds, args.clients, args.pad, Path(scratch), trace))
    text = report(result, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
