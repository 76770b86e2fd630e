"""One answer on one connection: the asyncio protocol, and the parser's callbacks that fill
the ``Response`` its reader waits on (status and headers, then the body, whole or as it comes).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.upstream.http1.wire import ConnectionBroken, Origin, earliest, wait_until

PAUSE_AT = 256 * 1024  # bytes buffered and not yet taken by the reader: stop reading the socket
MAX_HEADERS = 128  # per answer, as aiohttp's client allowed
MAX_HEADER_BYTES = 64 * 1024  # names and values together
_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


class Response:
    """An answer whose headers are in; the body is read with ``read`` or ``iter_chunks``.

    ``release(conn, reusable)`` takes the connection back when the response lets go of it.
    """

    def __init__(
        self,
        conn: Connection,
        release: Callable[[Connection, bool], None],
        loop: asyncio.AbstractEventLoop,
        read_timeout: float | None,
        deadline: float | None,
    ) -> None:
        self._conn: Connection | None = conn
        self._release = release
        self._loop = loop
        self._read_timeout = read_timeout
        self._deadline = deadline
        self.status = 0
        self.headers = _NO_HEADERS
        self.parser: httptools.HttpResponseParser = None  # type: ignore[assignment]  # by begin
        self._raw_headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._headers_in = False
        self._complete = False
        self._keep_alive = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
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
        self.close()
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
                self.close()
                return
            await self._wait_data()

    def close(self) -> None:
        """Let go of the connection: back to the pool when the answer was read to its end.

        The parser goes too: it holds this response's callbacks, so the two make a cycle that
        only the garbage collector would free. Freed here, an answer's objects go when their
        last user drops them, and a collection has nothing of theirs to walk (collections
        landed on requests as latency spikes; ``bench/HISTORY.md`` has the figures)."""
        conn, self._conn = self._conn, None
        self.parser = None  # type: ignore[assignment]
        if conn is not None:
            conn.response = None
            self._release(conn, self._complete and self._keep_alive)

    # -- waiting ---------------------------------------------------------------------------

    async def wait_headers(self, by: float | None) -> None:
        while not self._headers_in:
            await self._wait_once(earliest(by, self._read_timeout, self._loop.time()),
                                  "first byte")  # fmt: skip

    async def _wait_data(self) -> None:
        await self._wait_once(
            earliest(self._deadline, self._read_timeout, self._loop.time()), "read"
        )

    async def _wait_once(self, by: float | None, stage: str) -> None:
        if self._error is not None:
            raise self._error
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiter = waiter
        try:
            await wait_until(self._loop, waiter, by, stage)
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

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
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (103 Early Hints...): the real one follows
            self._raw_headers = []
            self._header_bytes = 0
            self._interim = True
            return
        self.status = status
        self.headers = headers = CIMultiDictProxy(CIMultiDict(self._raw_headers))
        self._keep_alive = self.parser.should_keep_alive()
        self._until_eof = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
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

    # -- from the connection ---------------------------------------------------------------

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


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; feeds the response in progress, if any."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.origin: Origin = None  # type: ignore[assignment]  # set by the pool that opens it
        self.response: Response | None = None
        self.lost = False
        self.idle_since = 0.0
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
        response.parser = parser
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
        response = self.response
        if response is None:
            self.lost = True  # bytes nobody asked for: this connection cannot be trusted
            self.transport.close()
            return
        try:
            response.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self.lost = True
            self.transport.close()
            response.on_parse_error(exc)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.response is not None:
            self.response.on_lost(exc)
