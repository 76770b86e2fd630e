"""A lean streaming client: one keep-alive HTTP/1.1 connection that sends a prebuilt request and
counts the ``data:`` events of each streamed answer as they arrive.

The relay figures run it on the load core beside the upstream and Redis. aiohttp's client,
which it replaces there, spent 2-4 µs of that core per relayed event (a Python call per HTTP
chunk and per read), which at 16 streams left the load core, not the proxy under test, as the
bottleneck. Here httptools (llhttp, in C) removes the chunk framing, and each body piece costs
one ``bytes.count``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

EVENT = b"data: "
TAIL = 256  # bytes of the answer's end kept, to find ``data: [DONE]`` and the cost comment


@dataclass
class StreamSample:
    status: int
    ttfc: float  # seconds from send to the first ``data:`` event
    first_to_last: float  # seconds from the first event to the end of the stream
    events: int
    done: bool  # saw ``data: [DONE]``
    cost_comment: bool  # saw Tollgate's ``: x-usage-cost`` comment
    size: int  # bytes received, status line, headers and chunk framing included (as wrk counts)


class _Answer:
    """What one answer has shown so far (httptools' callbacks land here)."""

    def __init__(self, sent: float) -> None:
        self.sent = sent
        self.first = 0.0
        self.events = 0
        self.edge = b""  # the last len(EVENT) - 1 bytes, for an event split between pieces
        self.tail = b""
        self.close = False
        self.size = 0


class StreamConnection(asyncio.Protocol):
    """One connection; ``await stream()`` sends the request and returns the sample."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: _Answer | None = None
        self.waiter: asyncio.Future[StreamSample] | None = None

    @classmethod
    async def open(cls, url: str, body: bytes, headers: dict[str, str]) -> StreamConnection:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        lines = [f"POST {parts.path} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines += [f"Content-Length: {len(body)}", "", ""]
        request = "\r\n".join(lines).encode() + body
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: cls(request), host, port)
        return conn

    async def stream(self) -> StreamSample:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("the connection is closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.answer = _Answer(time.perf_counter())
        self.transport.write(self.request)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's: no subclass

    def data_received(self, data: bytes) -> None:
        if self.answer is not None:
            self.answer.size += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(ConnectionError(f"malformed answer: {e}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection lost mid-answer: {exc}"))

    # httptools' callbacks
    def on_headers_complete(self) -> None:
        if self.answer is not None:
            self.answer.close = not self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        a = self.answer
        if a is None:
            return
        n = body.count(EVENT) + (a.edge + body[: len(EVENT) - 1]).count(EVENT)
        if n:
            if not a.events:
                a.first = time.perf_counter()
            a.events += n
        joined = a.edge + body if len(body) < len(EVENT) - 1 else body
        a.edge = joined[1 - len(EVENT) :]
        a.tail = (a.tail + body)[-TAIL:] if len(body) < TAIL else body[-TAIL:]

    def on_message_complete(self) -> None:
        a, waiter = self.answer, self.waiter
        self.answer = self.waiter = None
        if a is None or waiter is None or waiter.done():
            return
        end = time.perf_counter()
        first = a.first or end
        waiter.set_result(
            StreamSample(
                status=self.parser.get_status_code(),
                ttfc=first - a.sent,
                first_to_last=end - first,
                events=a.events,
                done=b"data: [DONE]" in a.tail,
                cost_comment=b": x-usage-cost " in a.tail,
                size=a.size,
            )
        )
        if a.close and self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter, self.answer = self.waiter, None, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()
