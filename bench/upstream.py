"""A fast local upstream that answers like OpenAI chat completions, plain and streaming.

Answers are built once per distinct request shape (path, body, stream knobs) and then served
as precomputed bytes, so the upstream itself costs little CPU per request. Plain answers are
``gateway.providers.mock.answer``'s bytes; streams have a chosen number of content chunks.

Knobs (command line defaults, each overridable per request by a header, which both the bench
pass-through and Tollgate forward):
  ``--latency-ms``      wait before answering        (``X-Bench-Latency-Ms``)
  ``--chunks``          content chunks per stream; 0: one per word, like the mock
                                                     (``X-Bench-Chunks``)
  ``--chunk-delay-ms``  pause between stream chunks  (``X-Bench-Chunk-Delay-Ms``)

    python -m bench.upstream --port 9001 --latency-ms 0
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway.providers.mock import answer
from gateway.tokens import TokenCounter

MAX_SHAPES = 512  # distinct request shapes kept; bench traffic has a handful


@dataclass(frozen=True, slots=True)
class Knobs:
    latency: float = 0.0  # seconds before the answer starts
    chunks: int = 0  # content chunks per stream; 0: as the mock provider answers
    chunk_delay: float = 0.0  # seconds between stream chunks


@dataclass(frozen=True, slots=True)
class Prepared:
    status: int
    headers: dict[str, str]
    chunks: tuple[bytes, ...]
    stream: bool


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
    def __init__(self, defaults: Knobs, counter: TokenCounter) -> None:
        self._defaults = defaults
        self._counter = counter
        self._shapes: dict[tuple[str, bytes, int], Prepared] = {}
        self.app = web.Application(client_max_size=16 * 1024 * 1024)
        self.app.router.add_post("/v1/{tail:.*}", self.handle)
        self.app.router.add_get("/healthz", self.healthz)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    def knobs(self, request: web.Request) -> Knobs:
        h = request.headers
        d = self._defaults
        return Knobs(
            latency=_ms(h.get("X-Bench-Latency-Ms"), d.latency),
            chunks=int(h.get("X-Bench-Chunks", d.chunks)),
            chunk_delay=_ms(h.get("X-Bench-Chunk-Delay-Ms"), d.chunk_delay),
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
        prepared = Prepared(result.status, dict(result.headers), tuple(parts), stream)
        if len(self._shapes) >= MAX_SHAPES:
            self._shapes.clear()
        self._shapes[shape] = prepared
        return prepared

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        knobs = self.knobs(request)
        prepared = self.prepare("/" + request.match_info["tail"], body, knobs.chunks)
        if knobs.latency:
            await asyncio.sleep(knobs.latency)
        if not prepared.stream:
            return web.Response(
                status=prepared.status, body=prepared.chunks[0], headers=prepared.headers
            )
        response = web.StreamResponse(status=prepared.status, headers=prepared.headers)
        await response.prepare(request)
        delay = knobs.chunk_delay
        last = len(prepared.chunks) - 1
        for i, chunk in enumerate(prepared.chunks):
            await response.write(chunk)
            if delay and i < last:
                await asyncio.sleep(delay)
        await response.write_eof()
        return response


def _ms(header: str | None, default: float) -> float:
    return float(header) / 1000.0 if header is not None else default


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench.upstream", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9001)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--chunks", type=int, default=0)
    p.add_argument("--chunk-delay-ms", type=float, default=0.0)
    return p


def main() -> None:
    args = build_parser().parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    counter = TokenCounter()
    counter.warm()
    defaults = Knobs(args.latency_ms / 1000.0, args.chunks, args.chunk_delay_ms / 1000.0)
    upstream = Upstream(defaults, counter)
    web.run_app(upstream.app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
