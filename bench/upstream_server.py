"""The bench upstream's serving layer: a small HTTP/1.1 server for answers prepared as bytes.

An ``asyncio.Protocol`` parses requests with httptools and asks a handler what to answer: a
``Wire`` (every byte to write, built once by ``encode``), a latency before it and a delay
between stream chunks. A plain answer is then one ``transport.write``; a stream is one chunk of
``Transfer-Encoding: chunked`` per event. Serving costs a parse and a write, so the upstream
takes little CPU from the gateway it shares the box with.

HTTP/1.1 keep-alive and ``Connection: close``; HTTP/1.0 (a stream then ends with the
connection); request bodies by Content-Length or chunked; pipelined requests answered in order,
each one after the previous answer's last byte; ``Expect: 100-continue``. Writing stops reading
while the client does not read (flow control), and a client gone mid-stream ends that stream. A
malformed request is answered 400 (a body over ``MAX_BODY``: 413) and the connection closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote_to_bytes

import httptools

MAX_BODY = 16 * 1024 * 1024  # aiohttp's client_max_size in the aiohttp version of this server
MAX_URL = 8 * 1024
MAX_QUEUED = 64  # pipelined answers waiting on a connection before it stops reading
KEEP, KEEP_10, CLOSE, CLOSE_10 = range(4)  # how the connection goes on after an answer
_OWN_HEADERS = frozenset({"connection", "content-length", "keep-alive", "transfer-encoding"})
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Wire:
    """One answer as the writes that send it, for each way the connection may go on
    (``writes[mode]``, ``keeps[mode]``: whether the connection stays open after it)."""

    stream: bool
    writes: tuple[tuple[bytes, ...], ...]
    keeps: tuple[bool, ...]


# The answer, seconds to wait before it, seconds between its stream chunks.
Reply = tuple[Wire, float, float]
# (method, path, body, the wanted headers the request had, by lower-case name) -> Reply
Handler = Callable[[bytes, bytes, bytes, dict[bytes, bytes] | None], Reply]


def encode(
    status: int,
    headers: Mapping[str, str],
    chunks: Sequence[bytes],
    *,
    stream: bool,
    head_only: bool = False,
) -> Wire:
    """The bytes of an answer: a plain one with Content-Length, or a stream whose every
    element of ``chunks`` is one HTTP chunk (to HTTP/1.0 clients: sent raw, then closed)."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"{status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in _OWN_HEADERS]

    def head(*extra: str, version: str = "1.1") -> bytes:
        return f"HTTP/{version} ".encode() + "\r\n".join([*lines, *extra, "", ""]).encode()

    if not stream:
        body = b"".join(chunks)
        length = f"Content-Length: {len(body)}"
        if head_only:
            body = b""
        return Wire(
            stream=False,
            writes=(
                (head(length) + body,),
                (head(length, "Connection: keep-alive", version="1.0") + body,),
                (head(length, "Connection: close") + body,),
                (head(length, "Connection: close", version="1.0") + body,),
            ),
            keeps=(True, True, False, False),
        )
    parts = [c for c in chunks if c]  # an empty chunk would end a chunked body early
    framed = [b"%x\r\n%b\r\n" % (len(c), c) for c in parts] + [b"0\r\n\r\n"]
    framed[-2:] = [b"".join(framed[-2:])]  # the last event and the end go in one write

    def after(head_bytes: bytes, writes: list[bytes]) -> tuple[bytes, ...]:
        return (head_bytes + writes[0], *writes[1:]) if writes else (head_bytes,)

    # HTTP/1.0 has no chunked encoding: the events go raw and the close ends the stream.
    raw = after(head("Connection: close", version="1.0"), parts)
    return Wire(
        stream=True,
        writes=(
            after(head("Transfer-Encoding: chunked"), framed),
            raw,
            after(head("Transfer-Encoding: chunked", "Connection: close"), framed),
            raw,
        ),
        keeps=(True, False, False, False),
    )


def text_answer(status: int, *, extra: Mapping[str, str] | None = None) -> Wire:
    """aiohttp's plain-text answer for an error status, e.g. ``404: Not Found``."""
    body = f"{status}: {HTTPStatus(status).phrase}".encode()
    headers = {"Content-Type": "text/plain; charset=utf-8", **(extra or {})}
    return encode(status, headers, [body], stream=False)


BAD_REQUEST = text_answer(400)
TOO_LARGE = text_answer(413)


class _TooLarge(Exception):
    pass


class HttpServerProtocol(asyncio.Protocol):
    """One client connection. ``wanted``: lower-case names of the headers the handler reads."""

    def __init__(self, handler: Handler, wanted: frozenset[bytes]) -> None:
        self._handler = handler
        self._wanted = wanted
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport = None  # type: ignore[assignment]  # connection_made
        self._url = b""
        self._body: list[bytes] = []
        self._size = 0
        self._given: dict[bytes, bytes] | None = None
        # (writes, keep the connection, latency, chunk delay), oldest first; an answer leaves
        # the queue only after its last byte is written, so later ones wait behind it
        self._queue: deque[tuple[tuple[bytes, ...], bool, float, float]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._done_reading = False  # a close was asked for, or the request stream was bad
        self._eof = False
        self._write_paused = False
        self._read_paused = False
        self._writable: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        while not self._done_reading:
            try:
                self._parser.feed_data(data)
                return
            except httptools.HttpParserUpgrade as exc:
                # An upgrade offer (h2c, websocket) answered as plain HTTP/1.1: go on after it.
                data = data[exc.args[0] :]
            except httptools.HttpParserError as exc:
                if self._done_reading:
                    return  # bytes after a request that closes the connection: ignored
                cause = exc.__context__
                too_large = isinstance(cause, _TooLarge)
                if cause is not None and not too_large:
                    log.warning("answering 400 to a request the handler refused: %r", cause)
                self._answer(TOO_LARGE if too_large else BAD_REQUEST, CLOSE, 0.0, 0.0)
                return

    def eof_received(self) -> bool | None:
        self._done_reading = True
        if self._task is not None:
            self._eof = True  # half-closed: finish the answers under way, then close
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._done_reading = True
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._update_reading()

    # -- httptools callbacks ---------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL:
            raise ValueError("URL too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key in self._wanted:
            if self._given is None:
                self._given = {}
            self._given[key] = value
        elif key == b"expect" and value.lower() == b"100-continue" and not self._queue:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > MAX_BODY:
            raise _TooLarge()
        self._body.append(data)

    def on_message_complete(self) -> None:
        if self._done_reading:
            return
        parser = self._parser
        path = self._url.partition(b"?")[0]
        if b"%" in path:
            path = unquote_to_bytes(path)
        body = b"".join(self._body)
        given = self._given
        self._url = b""
        self._body.clear()
        self._size = 0
        self._given = None
        v10 = parser.get_http_version() == "1.0"
        if parser.should_keep_alive():
            mode = KEEP_10 if v10 else KEEP
        else:
            mode = CLOSE_10 if v10 else CLOSE
        wire, latency, delay = self._handler(parser.get_method(), path, body, given)
        self._answer(wire, mode, latency, delay)

    # -- answering -------------------------------------------------------------------------

    def _answer(self, wire: Wire, mode: int, latency: float, delay: float) -> None:
        keep = wire.keeps[mode]
        if not keep:
            self._done_reading = True
        if not self._queue and not latency and not wire.stream:
            self._transport.write(wire.writes[mode][0])
            if not keep:
                self._transport.close()
            return
        self._queue.append((wire.writes[mode], keep, latency, delay))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())
        if len(self._queue) > MAX_QUEUED:
            self._update_reading()

    async def _drain(self) -> None:
        transport = self._transport
        queue = self._queue
        try:
            while queue:
                writes, keep, latency, delay = queue[0]
                if latency:
                    await asyncio.sleep(latency)
                last = len(writes) - 1
                for i, data in enumerate(writes):
                    if self._write_paused:
                        self._writable = asyncio.get_running_loop().create_future()
                        await self._writable
                    if transport.is_closing():
                        return
                    transport.write(data)
                    if delay and i < last:
                        await asyncio.sleep(delay)
                queue.popleft()
                if not keep:
                    transport.close()
                    return
                self._update_reading()
            if self._eof:
                transport.close()
        finally:
            self._task = None

    def _update_reading(self) -> None:
        pause = self._write_paused or len(self._queue) > MAX_QUEUED
        if pause != self._read_paused and not self._transport.is_closing():
            self._read_paused = pause
            if pause:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()
