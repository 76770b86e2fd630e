"""A real HTTP upstream on port 0 that answers like OpenAI and Anthropic (the mock's bytes).

Knobs for tests: ``usage_override`` replaces usage fields, ``chunk_delay`` spaces stream chunks,
``gate`` holds a stream after its first chunk until set, ``drop_after`` cuts the connection
after N chunks, ``omit_usage`` strips usage, ``status`` forces an error answer,
``images_returned`` keeps only that many generated images, ``pad_events`` puts an SSE comment
of that many bytes before each stream chunk (a stream of megabytes that costs a few tokens).

``raw_answer`` answers 200 with that content type and body; with ``status`` set,
``usage_override`` goes into the error body as its ``usage``.

``requests`` holds each request's JSON body, or for a multipart form its fields (a file field
as its file name); ``bodies`` the exact bytes received.
after N chunks, ``omit_usage`` strips usage, ``status`` forces an error answer, ``delay``
waits before answering.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from gateway.apis.tokens import TokenCounter
from gateway.codecs.multipart import boundary_of, parse_form
from gateway.upstream.mock import answer


def form_fields(body: bytes, content_type: str) -> dict[str, Any]:
    parts = parse_form(body, boundary_of(content_type))
    return {p.name: p.filename if p.filename is not None else p.value(body).decode() for p in parts}


class FakeUpstream:
    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter
        self.requests: list[dict[str, Any]] = []
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.usage_override: dict[str, Any] | None = None
        self.chunk_delay = 0.0
        self.gate: asyncio.Event | None = None
        self.finished = asyncio.Event()
        self.drop_after: int | None = None
        self.runaway_after: int | None = None  # then one event that never ends (over 1 MiB)
        self.omit_usage = False
        self.status: int | None = None
        self.images_returned: int | None = None
        self.delay = 0.0
        self.pad_events = 0
        self.raw_answer: tuple[str, bytes] | None = None  # (content type, body) of a 200
        self.app = web.Application()
        self.app.router.add_post("/v1/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        content_type = request.headers.get("Content-Type", "")
        self.bodies.append(body)
        if content_type.startswith("multipart/form-data"):
            self.requests.append(form_fields(body, content_type))
        else:
            self.requests.append(orjson.loads(body))
        self.headers.append(dict(request.headers))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.raw_answer is not None:
            content_type, raw = self.raw_answer
            return web.Response(body=raw, headers={"Content-Type": content_type})
        if self.status is not None:
            error: dict[str, Any] = {"error": {"message": "forced failure", "type": "server_error",
                                               "code": None, "param": None}}  # fmt: skip
            if self.usage_override is not None:  # some providers bill (and say so) on errors
                error["usage"] = self.usage_override
            return web.json_response(
                error,
                status=self.status,
                headers={"x-request-id": "up-123"},
            )
        result = answer(
            "/" + request.match_info["tail"],
            body,
            self.counter,
            content_type=content_type,
            usage_override=self.usage_override,
        )
        chunks = result.chunks
        if self.images_returned is not None:
            doc = orjson.loads(chunks[0])
            doc["data"] = doc["data"][: self.images_returned]
            chunks = [orjson.dumps(doc)]
        if self.omit_usage:
            chunks = [_without_usage(c) for c in chunks]
            chunks = [c for c in chunks if c]
        if len(chunks) == 1 and not result.headers["Content-Type"].startswith("text/event-stream"):
            return web.Response(
                status=result.status,
                body=chunks[0],
                headers={**result.headers, "x-request-id": "up-123"},
            )
        response = web.StreamResponse(status=result.status, headers=result.headers)
        await response.prepare(request)
        try:
            for i, chunk in enumerate(chunks):
                if self.drop_after is not None and i == self.drop_after:
                    assert request.transport is not None
                    request.transport.close()
                    return response
                if self.runaway_after is not None and i == self.runaway_after:
                    await response.write(b"data: " + b"x" * (2 << 20))
                    return response
                if self.pad_events:
                    await response.write(b": " + b"p" * self.pad_events + b"\n\n")
                await response.write(chunk)
                if i == 0 and self.gate is not None:
                    await self.gate.wait()
                if self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
            await response.write_eof()
        finally:
            self.finished.set()
        return response


def _without_usage(chunk: bytes) -> bytes:
    if not chunk.startswith(b"data: {"):
        doc = orjson.loads(chunk) if chunk.startswith(b"{") else None
        if isinstance(doc, dict):
            doc.pop("usage", None)
            return orjson.dumps(doc)
        return chunk
    doc = orjson.loads(chunk[6:])
    if doc.get("choices") == [] and "usage" in doc:
        return b""
    doc.pop("usage", None)
    return b"data: " + orjson.dumps(doc) + b"\n\n"
