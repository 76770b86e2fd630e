"""A fast local upstream that answers like OpenAI chat completions, plain and streaming.

Answers are built once per distinct request shape (path, body, stream knobs) and then served
as precomputed bytes, so the upstream itself costs little CPU per request. Plain answers are
``gateway.upstream.mock.answer``'s bytes; streams have a chosen number of content chunks.

Knobs (command line defaults, each overridable per request in the body's ``user`` field,
``with_knobs`` writes it, or by a header; Tollgate forwards only the headers providers need,
so the body is what reaches the upstream through any proxy):
  ``--latency-ms``      wait before answering        (``latency_ms=``, ``X-Bench-Latency-Ms``)
  ``--chunks``          content chunks per stream; 0: one per word, like the mock
                                                     (``chunks=``, ``X-Bench-Chunks``)
  ``--chunk-delay-ms``  pause between stream chunks  (``delay_ms=``, ``X-Bench-Chunk-Delay-Ms``)

The HTTP side is ``bench.upstream_server``: a raw asyncio protocol that writes each answer's
precomputed bytes (a plain answer in one write, a stream one HTTP chunk per event).

    python -m bench.upstream --port 9001 --latency-ms 0
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import orjson

from bench.upstream_server import HttpServerProtocol, Reply, Wire, encode, text_answer
from gateway.apis.tokens import TokenCounter
from gateway.upstream.mock import answer

MAX_SHAPES = 512  # distinct request shapes kept; bench traffic has a handful
LATENCY, CHUNKS, CHUNK_DELAY = b"x-bench-latency-ms", b"x-bench-chunks", b"x-bench-chunk-delay-ms"
KNOB_HEADERS = frozenset({LATENCY, CHUNKS, CHUNK_DELAY})
HEALTHZ_HEADERS = {"Content-Type": "application/json"}
HEALTHZ = encode(200, HEALTHZ_HEADERS, [b'{"status":"ok"}'], stream=False)
HEALTHZ_HEAD = encode(200, HEALTHZ_HEADERS, [b'{"status":"ok"}'], stream=False, head_only=True)
NOT_FOUND = text_answer(404)
ONLY_POST = text_answer(405, extra={"Allow": "POST"})
ONLY_GET = text_answer(405, extra={"Allow": "GET,HEAD"})


@dataclass(frozen=True, slots=True)
class Knobs:
    latency: float = 0.0  # seconds before the answer starts
    chunks: int = 0  # content chunks per stream; 0: as the mock provider answers
    chunk_delay: float = 0.0  # seconds between stream chunks


KNOBS_PREFIX = "bench-knobs "


def with_knobs(body: bytes, *, chunks: int, chunk_delay_ms: float = 0.0,
               latency_ms: float = 0.0) -> bytes:  # fmt: skip
    """``body`` carrying per-request knobs in its ``user`` field (forwarded by any proxy)."""
    knobs = f"{KNOBS_PREFIX}chunks={chunks} delay_ms={chunk_delay_ms} latency_ms={latency_ms}"
    return orjson.dumps({**orjson.loads(body), "user": knobs})


def body_knobs(body: bytes, defaults: Knobs) -> Knobs:
    """The knobs ``with_knobs`` put in ``body``; ``defaults`` when there are none."""
    try:
        user = orjson.loads(body).get("user")
    except (orjson.JSONDecodeError, AttributeError):
        return defaults
    if not isinstance(user, str) or not user.startswith(KNOBS_PREFIX):
        return defaults
    given = dict(part.split("=", 1) for part in user[len(KNOBS_PREFIX):].split())
    return Knobs(latency=float(given.get("latency_ms", 0)) / 1000.0,
                 chunks=int(given.get("chunks", defaults.chunks)),
                 chunk_delay=float(given.get("delay_ms", 0)) / 1000.0)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Prepared:
    status: int
    headers: dict[str, str]
    chunks: tuple[bytes, ...]
    stream: bool
    wire: Wire  # the bytes that answer it


def stream_chunks(payload: dict[str, Any], n: int, prompt_tokens: int) -> list[bytes]:
    """An OpenAI chat.completions stream with ``n`` one-token content chunks."""
    model = payload["model"]
    options = payload.get("stream_options")
    with_usage = isinstance(options, dict) and options.get("include_usage") is True
    rid = "chatcmpl-" + uuid.uuid4().hex[:24]
    created = int(time.time())

    def event(choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": choices,
        }
        if with_usage:
            chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def delta(d: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}]

    out = [event(delta({"role": "assistant", "content": "", "refusal": None}))]
    out += [event(delta({"content": f" tok{i % 10}"})) for i in range(n)]
    out.append(event(delta({}, "stop")))
    if with_usage:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": n,
            "total_tokens": prompt_tokens + n,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        out.append(event([], usage))
    out.append(b"data: [DONE]\n\n")
    return out


class Upstream:
    """What to answer: ``respond`` routes a request, ``prepare`` builds (once) each answer."""

    def __init__(self, defaults: Knobs, counter: TokenCounter) -> None:
        self._defaults = defaults
        self._counter = counter
        self._shapes: dict[tuple[str, bytes, int], Prepared] = {}
        self._body_knobs: dict[bytes, Knobs] = {}  # read once per distinct body

    def respond(
        self, method: bytes, path: bytes, body: bytes, given: dict[bytes, bytes] | None
    ) -> Reply:
        """The answer to one request (``given``: its knob headers, if it had any)."""
        if path.startswith(b"/v1/"):
            if method != b"POST":
                return ONLY_POST, 0.0, 0.0
            knobs = self.knobs(given) if given is not None else self._knobs_of(body)
            prepared = self.prepare(path[3:].decode(errors="replace"), body, knobs.chunks)
            return prepared.wire, knobs.latency, knobs.chunk_delay
        if path == b"/healthz":
            if method == b"GET":
                return HEALTHZ, 0.0, 0.0
            return (HEALTHZ_HEAD if method == b"HEAD" else ONLY_GET), 0.0, 0.0
        return NOT_FOUND, 0.0, 0.0

    def _knobs_of(self, body: bytes) -> Knobs:
        knobs = self._body_knobs.get(body)
        if knobs is None:
            if len(self._body_knobs) >= MAX_SHAPES:
                self._body_knobs.clear()
            knobs = self._body_knobs[body] = body_knobs(body, self._defaults)
        return knobs

    def knobs(self, given: dict[bytes, bytes]) -> Knobs:
        d = self._defaults
        chunks = given.get(CHUNKS)
        return Knobs(
            latency=_ms(given.get(LATENCY), d.latency),
            chunks=d.chunks if chunks is None else int(chunks),
            chunk_delay=_ms(given.get(CHUNK_DELAY), d.chunk_delay),
        )

    def prepare(self, path: str, body: bytes, chunks: int) -> Prepared:
        shape = (path, body, chunks)
        hit = self._shapes.get(shape)
        if hit is not None:
            return hit
        result = answer(path, body, self._counter)
        stream = result.headers.get("Content-Type", "").startswith("text/event-stream")
        parts = result.chunks
        if stream and chunks > 0:
            payload = orjson.loads(body)
            plain = answer(path, orjson.dumps({**payload, "stream": False}), self._counter)
            prompt = orjson.loads(plain.chunks[0])["usage"]["prompt_tokens"]
            parts = stream_chunks(payload, chunks, prompt)
        wire = encode(result.status, result.headers, parts, stream=stream)
        prepared = Prepared(result.status, dict(result.headers), tuple(parts), stream, wire)
        if len(self._shapes) >= MAX_SHAPES:
            self._shapes.clear()
        self._shapes[shape] = prepared
        return prepared


def _ms(header: bytes | None, default: float) -> float:
    return float(header) / 1000.0 if header is not None else default


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench.upstream", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9001)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--chunks", type=int, default=0)
    p.add_argument("--chunk-delay-ms", type=float, default=0.0)
    return p


async def serve(upstream: Upstream, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpServerProtocol(upstream.respond, KNOB_HEADERS), host, port, backlog=1024
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def run(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run``, on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def main() -> None:
    args = build_parser().parse_args()
    counter = TokenCounter()
    counter.warm()
    defaults = Knobs(args.latency_ms / 1000.0, args.chunks, args.chunk_delay_ms / 1000.0)
    run(serve(Upstream(defaults, counter), args.host, args.port))


if __name__ == "__main__":
    main()
