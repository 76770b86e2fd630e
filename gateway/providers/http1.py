"""A lean HTTP/1.1 client for the forward: pooled keep-alive connections, one parser in C.

aiohttp's ``ClientSession`` costs about as much CPU per request as all of the metering (URL
objects, request and response objects, tracing hooks, cookie jar, timers). The forward needs
much less: POST a body that is already bytes to one of a few origins, and hand back the status,
the headers and the body, whole or as it arrives. This module does only that, on asyncio
protocols with ``httptools`` (llhttp, the parser Node.js uses) for the response.

Timeouts, like aiohttp's: ``connect`` bounds waiting for a pool slot plus opening the connection
(TLS included); ``read`` is the longest silence while waiting for the answer; ``first_byte`` bounds
the wait for the answer's headers; ``total`` bounds the whole exchange, body included. A pooled
connection that the server closed is noticed before it is used; a request is never sent twice.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

PAUSE_AT = 256 * 1024  # bytes buffered and not yet taken by the reader: stop reading the socket
KEEPALIVE = 15.0  # seconds an idle connection is kept (servers commonly close after 5 to 75 s)
MAX_HEADERS = 128  # per answer, as aiohttp's client allowed
MAX_HEADER_BYTES = 64 * 1024  # names and values together
_T = TypeVar("_T")


class ClientTimeout(TimeoutError):
    """A timeout of this client; ``stage`` says which wait ran out."""

    def __init__(self, stage: str) -> None:
        super().__init__(stage)
        self.stage = stage


class ConnectionBroken(ConnectionError):
    """The connection failed or closed before the answer was complete."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int
    prefix: str  # the base URL's path, without a trailing slash

    @classmethod
    def parse(cls, base_url: str) -> Origin:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float | None
    read: float | None
    first_byte: float | None
    total: float | None


class Pool:
    """Keep-alive connections per origin, at most ``limit`` in use at once across origins."""

    def __init__(self, *, limit: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._limit = limit
        self._busy = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle: dict[Origin, list[_Connection]] = {}
        self._ssl = ssl_context
        self._closed = False

    async def request(
        self,
        origin: Origin,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        timeouts: Timeouts,
    ) -> Response:
        """POST ``body`` to ``origin`` + ``path`` and return once the answer's headers are in."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = None if timeouts.total is None else start + timeouts.total
        head = _encode_head(origin, path, headers, len(body))
        connect_by = _earliest(deadline, timeouts.connect, start)
        await self._acquire(loop, connect_by)
        try:
            conn = self._take_idle(origin, loop.time())
            if conn is None:
                conn = await self._open(loop, origin, connect_by)
        except BaseException:
            self._release()
            raise
        response = Response(self, origin, conn, loop, timeouts.read, deadline)
        try:
            conn.begin(response)
            if len(body) < 65536:
                conn.transport.write(head + body)  # one send for the usual small request
            else:
                conn.transport.writelines((head, body))
            await response.wait_headers(_earliest(deadline, timeouts.first_byte, start))
        except BaseException:
            response.close()
            raise
        return response

    async def close(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.transport.close()
        self._idle.clear()

    # -- the pool --------------------------------------------------------------------------

    async def _acquire(self, loop: asyncio.AbstractEventLoop, by: float | None) -> None:
        if self._busy < self._limit and not self._waiters:
            self._busy += 1
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await _wait(loop, waiter, by, "connect")
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed over as we gave up: pass it on
            else:
                waiter.cancel()
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the waiter
                return
        self._busy -= 1

    def _take_idle(self, origin: Origin, now: float) -> _Connection | None:
        conns = self._idle.get(origin)
        while conns:
            conn = conns.pop()
            if not conn.lost and now - conn.idle_since < KEEPALIVE:
                return conn
            conn.transport.close()
        return None

    async def _open(
        self, loop: asyncio.AbstractEventLoop, origin: Origin, by: float | None
    ) -> _Connection:
        tls = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()  # once: it loads the CA store
            tls = self._ssl
        connecting = asyncio.ensure_future(
            loop.create_connection(
                _Connection,
                origin.host,
                origin.port,
                ssl=tls,
                server_hostname=origin.host if tls else None,
            )
        )
        try:
            _, conn = await _wait(loop, connecting, by, "connect")
        except OSError as exc:
            raise ConnectionBroken(type(exc).__name__) from exc  # not the address: it is ours
        except BaseException:  # a timeout, or our task cancelled (maybe as the connect ended)
            if connecting.done() and not connecting.cancelled() and not connecting.exception():
                connecting.result()[0].close()
            else:
                connecting.cancel()
            raise
        return conn

    def _done(self, origin: Origin, conn: _Connection, reusable: bool) -> None:
        """A response let go of its connection: keep it for the next request, or close it."""
        if reusable and not conn.lost and not self._closed:
            conn.resume()  # an answer may have ended while its reader held the socket back
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(origin, []).append(conn)
        else:
            conn.transport.close()
        self._release()


class Response:
    """An answer whose headers are in; the body is read with ``read`` or ``iter_chunks``."""

    def __init__(
        self,
        pool: Pool,
        origin: Origin,
        conn: _Connection,
        loop: asyncio.AbstractEventLoop,
        read_timeout: float | None,
        deadline: float | None,
    ) -> None:
        self._pool = pool
        self._origin = origin
        self._conn: _Connection | None = conn
        self._loop = loop
        self._read_timeout = read_timeout
        self._deadline = deadline
        self.status = 0
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
        self._raw_headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._headers_in = False
        self._complete = False
        self._keep_alive = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.parser: httptools.HttpResponseParser = None  # type: ignore[assignment]  # by begin
        self._until_eof = False
        self._interim = False
        self._may_pause = True

    # -- for readers -----------------------------------------------------------------------

    async def read(self) -> bytes:
        if self._conn is not None:
            self._conn.resume()  # the whole body is wanted: never hold the socket back
        self._may_pause = False
        while not self._complete:
            await self._wait_data()
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._finish()
        return data

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:  # everything that has arrived, as one piece (fewer, larger writes)
                chunks = self._chunks
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._buffered = 0
                if self._conn is not None:
                    self._conn.resume()
                yield data
                continue
            if self._complete:
                self._finish()
                return
            await self._wait_data()

    def close(self) -> None:
        """Let go of the connection: back to the pool when the answer was read to its end."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.response = None
            self._pool._done(self._origin, conn, self._complete and self._keep_alive)

    # -- waiting ---------------------------------------------------------------------------

    async def wait_headers(self, by: float | None) -> None:
        while not self._headers_in:
            by_now = _earliest(by, self._read_timeout, self._loop.time())
            await self._wait_once(by_now, "first byte")

    async def _wait_data(self) -> None:
        await self._wait_once(
            _earliest(self._deadline, self._read_timeout, self._loop.time()), "read"
        )

    async def _wait_once(self, by: float | None, stage: str) -> None:
        if self._error is not None:
            raise self._error
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiter = waiter
        try:
            await _wait(self._loop, waiter, by, stage)
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _finish(self) -> None:
        if self._conn is not None:
            self.close()

    # -- httptools callbacks (the connection's parser calls them) ----------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES or len(self._raw_headers) >= MAX_HEADERS:
            raise ValueError("the answer's headers are too large")  # a parse error for the caller
        self._raw_headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        if self._complete:  # a second answer nobody asked for: not ours, and not trusted
            self._keep_alive = False
            return
        parser = self.parser
        status = parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (103 Early Hints...): the real one follows
            self._raw_headers = []
            self._header_bytes = 0
            self._interim = True
            return
        keep_alive = parser.should_keep_alive()
        self.status = status
        self.headers = CIMultiDictProxy(CIMultiDict(self._raw_headers))
        self._keep_alive = keep_alive
        self._until_eof = (
            "content-length" not in self.headers
            and "chunked" not in self.headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )
        self._headers_in = True
        self._wake()

    def on_body(self, data: bytes) -> None:
        if self._complete:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered >= PAUSE_AT and self._may_pause and self._conn is not None:
            self._conn.pause()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self._complete:
            return
        self._keep_alive = self.parser.should_keep_alive()
        self._complete = True
        self._wake()

    def on_lost(self, exc: BaseException | None) -> None:
        if self._headers_in and self._until_eof and not self._complete and exc is None:
            self._keep_alive = False
            self._complete = True  # this answer's end is the connection's end
        elif not self._complete and self._error is None:
            reason = type(exc).__name__ if exc else "the server closed the connection"
            self._error = ConnectionBroken(reason)
        self._wake()

    def on_parse_error(self, exc: Exception) -> None:
        self._error = ConnectionBroken(f"malformed answer ({type(exc).__name__})")
        self._wake()


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; feeds the response in progress, if any."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.response: Response | None = None
        self.lost = False
        self.idle_since = 0.0
        self._parser: httptools.HttpResponseParser | None = None
        self._paused = False

    def begin(self, response: Response) -> None:
        self.response = response
        # The parser calls the response directly: one Python call per body piece, not two.
        parser = httptools.HttpResponseParser(response)
        # As lenient as aiohttp's client was: providers' answers that it accepted still pass.
        parser.set_dangerous_leniencies(
            lenient_headers=True,
            lenient_optional_cr_before_lf=True,
            lenient_spaces_after_chunk_size=True,
        )
        self._parser = response.parser = parser
        if self.lost:  # closed by the server between the pool check and now
            response.on_lost(None)

    def pause(self) -> None:
        if not self._paused and not self.lost:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and not self.lost:
            self._paused = False
            self.transport.resume_reading()

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.response is None or self._parser is None:
            self.lost = True  # bytes nobody asked for: this connection cannot be trusted
            self.transport.close()
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self.lost = True
            self.transport.close()
            if self.response is not None:
                self.response.on_parse_error(exc)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.response is not None:
            self.response.on_lost(exc)


def _encode_head(origin: Origin, path: str, headers: Mapping[str, str], length: int) -> bytes:
    lines = [f"POST {origin.prefix}{path} HTTP/1.1", f"Host: {origin.host_header}",
             f"Content-Length: {length}"]  # fmt: skip
    lines += [f"{name}: {value}" for name, value in headers.items()]
    text = "\r\n".join(lines)
    breaks = len(lines) - 1  # only the line ends we put there
    if text.count("\n") != breaks or text.count("\r") != breaks:
        raise ValueError("a header name or value contains a line break")
    return (text + "\r\n\r\n").encode("utf-8", "surrogateescape")


def _earliest(deadline: float | None, timeout: float | None, now: float) -> float | None:
    if timeout is None:
        return deadline
    by = now + timeout
    return by if deadline is None or by < deadline else deadline


async def _wait(
    loop: asyncio.AbstractEventLoop, fut: asyncio.Future[_T], by: float | None, stage: str
) -> _T:
    """``await fut`` until the loop time ``by``; then cancel it and raise ``ClientTimeout``."""
    if by is None:
        return await fut
    expired = False

    def expire() -> None:
        nonlocal expired
        if not fut.done():
            expired = True
            fut.cancel()

    handle = loop.call_at(by, expire)
    try:
        return await fut
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if expired and (task is None or not task.cancelling()):
            raise ClientTimeout(stage) from None
        raise  # our own task is being cancelled: that wins over a timeout in the same tick
    finally:
        handle.cancel()
