"""The forward's HTTP/1.1 client against raw servers on loopback that misbehave on purpose."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.providers import http1
from gateway.providers.http1 import (
    PAUSE_AT,
    ClientTimeout,
    ConnectionBroken,
    Origin,
    Pool,
    Timeouts,
)
from tests.support.tls import self_signed

Respond = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]
SLOW = Timeouts(connect=5, read=5, first_byte=5, total=30)


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


class RawServer:
    """Reads each request (head and Content-Length body) and lets ``respond`` write anything."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self, tls: ssl.SSLContext | None = None) -> Origin:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        port = self.server.sockets[0].getsockname()[1]
        scheme = "https" if tls else "http"
        host = "localhost" if tls else "127.0.0.1"
        return Origin.parse(f"{scheme}://{host}:{port}/v1")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)  # type: ignore[arg-type]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                await self.respond(reader, writer, request)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def serve(respond: Respond, tls: ssl.SSLContext | None = None) -> tuple[RawServer, Origin]:
    server = RawServer(respond)
    return server, await server.start(tls)


async def test_request_bytes_and_keep_alive_reuse() -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(ok(b'{"a":1}', b"Content-Type: application/json\r\nX-Two: 1\r\nX-Two: 2\r\n"))

    server, origin = await serve(respond)
    pool = Pool(limit=4)
    try:
        for _ in range(3):
            r = await pool.request(origin, "/chat", {"X-Client": "yes"}, b'{"q":1}', SLOW)
            assert r.status == 200
            assert r.headers["content-type"] == "application/json"
            assert r.headers.getall("x-two") == ["1", "2"]
            assert await r.read() == b'{"a":1}'
            r.close()
        assert server.connections == 1  # one connection, kept alive across the three
        head, body = server.requests[0].split(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /v1/chat HTTP/1.1"
        assert f"Host: 127.0.0.1:{origin.port}".encode() in lines
        assert b"Content-Length: 7" in lines and b"X-Client: yes" in lines
        assert body == b'{"q":1}'
    finally:
        await pool.close()
        await server.close()


async def test_chunked_stream_arrives_piece_by_piece() -> None:
    release = asyncio.Event()

    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: text/event-stream\r\n\r\n5\r\nfirst\r\n")  # fmt: skip
        await w.drain()
        await release.wait()
        w.write(b"6\r\nsecond\r\n0\r\n\r\n")

    server, origin = await serve(respond)
    pool = Pool(limit=4)
    try:
        r = await pool.request(origin, "/s", {}, b"", SLOW)
        pieces = []
        async for piece in r.iter_chunks():
            pieces.append(piece)
            release.set()  # the rest only after the first piece reached us
        assert pieces[0] == b"first" and b"".join(pieces) == b"firstsecond"
        r.close()
        r2 = await pool.request(origin, "/s", {}, b"", SLOW)  # reused after a chunked answer
        assert await r2.read() == b"firstsecond"
        r2.close()
        assert server.connections == 1
    finally:
        await pool.close()
        await server.close()


async def test_interim_answers_are_skipped() -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
                b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final", b"X-Final: 1\r\n"))  # fmt: skip

    server, origin = await serve(respond)
    pool = Pool(limit=1)
    try:
        for _ in range(2):  # and the connection is still good for the next request
            r = await pool.request(origin, "/x", {}, b"{}", SLOW)
            assert (r.status, r.headers.get("x-final"), r.headers.get("link")) == (200, "1", None)
            assert await r.read() == b"final"
            r.close()
        assert server.connections == 1
    finally:
        await pool.close()
        await server.close()


async def test_an_unasked_second_answer_is_not_read_as_body_and_the_connection_dropped() -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(ok(b"mine") + ok(b"not asked for"))  # one segment: both reach the parser

    server, origin = await serve(respond)
    pool = Pool(limit=1)
    try:
        for _ in range(2):
            r = await pool.request(origin, "/x", {}, b"{}", SLOW)
            assert (r.status, await r.read()) == (200, b"mine")
            r.close()
        assert server.connections == 2  # the first connection was not trusted again
    finally:
        await pool.close()
        await server.close()


async def test_answer_delimited_by_close_is_read_whole_and_not_reused() -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await w.drain()
        w.close()

    server, origin = await serve(respond)
    pool = Pool(limit=4)
    try:
        for _ in range(2):
            r = await pool.request(origin, "/x", {}, b"{}", SLOW)
            assert await r.read() == b"until the end"
            r.close()
        assert server.connections == 2
    finally:
        await pool.close()
        await server.close()


async def test_idle_connection_closed_by_the_server_is_not_used() -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(ok(b"fine"))
        await w.drain()
        w.close()  # keep-alive offered by HTTP/1.1, then the server closes while idle

    server, origin = await serve(respond)
    pool = Pool(limit=4)
    try:
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)
        assert await r.read() == b"fine"
        r.close()
        await asyncio.sleep(0.05)  # the FIN arrives while the connection is idle
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)
        assert await r.read() == b"fine"
        r.close()
        assert server.connections == 2 and len(server.requests) == 2  # nothing sent twice
    finally:
        await pool.close()
        await server.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part",  # then the close
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n",  # headers never end
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n0\r\n\r\n",
        b"",  # closed without a byte
    ],
)
async def test_broken_answers_raise_connection_broken(answer: bytes) -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(answer)
        await w.drain()
        w.close()

    server, origin = await serve(respond)
    pool = Pool(limit=1)
    try:
        with pytest.raises(ConnectionBroken):
            r = await pool.request(origin, "/x", {}, b"{}", SLOW)
            try:
                await r.read()
            finally:
                r.close()
        server.respond = _answer_ok
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)  # the one slot was given back
        assert await r.read() == b"ok"
        r.close()
    finally:
        await pool.close()
        await server.close()


async def _answer_ok(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
    w.write(ok(b"ok"))


async def _never(_r: asyncio.StreamReader, _w: asyncio.StreamWriter, _req: bytes) -> None:
    await asyncio.sleep(3600)


@pytest.mark.parametrize(
    ("timeouts", "stage"),
    [
        (Timeouts(connect=5, read=5, first_byte=0.2, total=30), "first byte"),
        (Timeouts(connect=5, read=0.2, first_byte=5, total=30), "first byte"),
        (Timeouts(connect=5, read=5, first_byte=5, total=0.2), "first byte"),
    ],
)
async def test_no_answer_times_out_at_the_tightest_limit(timeouts: Timeouts, stage: str) -> None:
    server, origin = await serve(_never)
    pool = Pool(limit=1)
    try:
        t0 = time.perf_counter()
        with pytest.raises(ClientTimeout) as caught:
            await pool.request(origin, "/x", {}, b"{}", timeouts)
        assert caught.value.stage == stage
        assert 0.15 < time.perf_counter() - t0 < 2
        server.respond = _answer_ok
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)  # slot back, fresh connection
        assert await r.read() == b"ok"
        r.close()
        assert server.connections == 2
    finally:
        await pool.close()
        await server.close()


@pytest.mark.parametrize("limit", ["read", "total"])
async def test_silence_in_the_body_times_out(limit: str) -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await w.drain()
        await asyncio.sleep(3600)

    server, origin = await serve(respond)
    pool = Pool(limit=1)
    timeouts = Timeouts(connect=5, read=0.3 if limit == "read" else 5, first_byte=5,
                        total=0.3 if limit == "total" else 30)  # fmt: skip
    try:
        r = await pool.request(origin, "/x", {}, b"{}", timeouts)
        got = []
        with pytest.raises(ClientTimeout) as caught:
            async for piece in r.iter_chunks():
                got.append(piece)
        r.close()
        assert got == [b"hi"] and caught.value.stage == "read"
    finally:
        await pool.close()
        await server.close()


async def test_pool_limit_queues_then_times_out_and_keeps_its_count() -> None:
    gate = asyncio.Event()

    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        await gate.wait()
        w.write(ok(b"ok"))

    server, origin = await serve(respond)
    pool = Pool(limit=1)
    try:
        first = asyncio.create_task(pool.request(origin, "/x", {}, b"{}", SLOW))
        await asyncio.sleep(0.05)
        with pytest.raises(ClientTimeout) as caught:  # no slot within the connect limit
            await pool.request(origin, "/x", {}, b"{}", Timeouts(0.2, 5, 5, 30))
        assert caught.value.stage == "connect"
        queued = asyncio.create_task(pool.request(origin, "/x", {}, b"{}", SLOW))
        cancelled = asyncio.create_task(pool.request(origin, "/x", {}, b"{}", SLOW))
        await asyncio.sleep(0.05)
        cancelled.cancel()
        gate.set()
        r1 = await first
        assert not queued.done()  # still waiting: the one slot is taken until r1 lets go
        assert await r1.read() == b"ok"  # read to the end: the slot passes to the queued one
        r2 = await queued
        assert await r2.read() == b"ok"
        r2.close()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        r3 = await pool.request(origin, "/x", {}, b"{}", SLOW)
        assert await r3.read() == b"ok"
        r3.close()
        assert pool._busy == 0 and server.connections == 1
    finally:
        await pool.close()
        await server.close()


async def test_a_slow_reader_holds_the_sender_back() -> None:
    size = 64 * 1024 * 1024
    sent = 0

    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        nonlocal sent
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"x" * 65536
        for _ in range(size // len(block)):
            w.write(block)
            await w.drain()
            sent += len(block)

    server, origin = await serve(respond)
    pool = Pool(limit=1)
    try:
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)
        chunks = r.iter_chunks()
        received = len(await anext(chunks))
        await asyncio.sleep(0.5)  # not reading: the socket must stop being read
        assert sent < size / 2, sent
        assert r._buffered <= PAUSE_AT + 4 * 1024 * 1024
        async for piece in chunks:
            received += len(piece)
        assert received == size
        r.close()
    finally:
        await pool.close()
        await server.close()


async def test_an_answer_that_ends_while_held_back_leaves_a_usable_connection() -> None:
    """The last piece of a stream both crosses the pause mark and ends the answer; the reader
    lets go without reading it: the pooled connection must not stay paused."""
    size = PAUSE_AT + 4096

    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, req: bytes) -> None:
        if b"/second" in req:
            w.write(ok(b"second"))
            return
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nfirst" % (size + 5))
        await w.drain()
        await asyncio.sleep(0.05)
        w.write(b"x" * size)  # crosses PAUSE_AT and completes the answer

    server, origin = await serve(respond)
    pool = Pool(limit=1)
    try:
        r = await pool.request(origin, "/first", {}, b"{}", SLOW)
        chunks = r.iter_chunks()
        assert await anext(chunks) == b"first"
        await asyncio.sleep(0.2)  # everything arrives, past the pause mark, unread
        conn = r._conn
        assert r._complete and conn is not None and conn._paused  # the case under test
        r.close()  # complete and keep-alive: back to the pool
        await chunks.aclose()
        assert pool._busy == 0 and not conn._paused
        r2 = await pool.request(origin, "/second", {}, b"{}", Timeouts(5, 1, 1, 5))
        assert await r2.read() == b"second"
        r2.close()
    finally:
        await pool.close()
        await server.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",  # bare LF line ends
        b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",  # obs-fold
        b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nok",  # control byte
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\n0\r\n\r\n",  # LF
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 \r\nok\r\n0\r\n\r\n",
    ],
)
async def test_sloppy_answers_that_aiohttp_accepted_still_pass(answer: bytes) -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(answer)

    server, origin = await serve(respond)
    pool = Pool(limit=1)
    try:
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)
        assert (r.status, await r.read()) == (200, b"ok")
        r.close()
    finally:
        await pool.close()
        await server.close()


async def test_unasked_upgrade_is_a_clean_connection_broken(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n")  # fmt: skip

    server, origin = await serve(respond)
    pool = Pool(limit=1)
    try:
        with pytest.raises(ConnectionBroken):
            await pool.request(origin, "/x", {}, b"{}", Timeouts(5, 1, 1, 5))
        assert not [rec for rec in caplog.records if rec.levelname == "ERROR"]
        assert pool._busy == 0
    finally:
        await pool.close()
        await server.close()


async def test_headers_past_the_limit_are_refused() -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: 1\r\n" * 200 + b"Content-Length: 2\r\n\r\nok")

    server, origin = await serve(respond)
    pool = Pool(limit=1)
    try:
        with pytest.raises(ConnectionBroken, match="malformed"):
            await pool.request(origin, "/x", {}, b"{}", SLOW)
    finally:
        await pool.close()
        await server.close()


async def test_a_reset_cuts_an_answer_that_ends_with_the_connection() -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart of it")
        await w.drain()
        await asyncio.sleep(0.05)
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()  # RST, not FIN: the answer did not end

    server, origin = await serve(respond)
    pool = Pool(limit=1)
    try:
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)
        with pytest.raises(ConnectionBroken):
            await r.read()
        r.close()
    finally:
        await pool.close()
        await server.close()


async def test_a_cancel_as_the_connection_opens_does_not_leak_it() -> None:
    server, origin = await serve(_answer_ok)
    pool = Pool(limit=1)
    loop = asyncio.get_running_loop()
    real = loop.create_connection
    opened: list[asyncio.BaseTransport] = []
    outer: list[asyncio.Future[object]] = []

    async def create_connection(*args: Any, **kwargs: Any) -> Any:
        transport, protocol = await real(*args, **kwargs)
        opened.append(transport)
        loop.call_soon(outer[0].cancel)  # the client leaves in the same tick
        return transport, protocol

    loop.create_connection = create_connection  # type: ignore[method-assign]
    try:
        outer.append(asyncio.ensure_future(pool.request(origin, "/x", {}, b"{}", SLOW)))
        with pytest.raises(asyncio.CancelledError):
            await outer[0]
        assert pool._busy == 0
        assert opened and opened[0].is_closing()
    finally:
        del loop.create_connection
        for t in opened:
            t.close()
        await pool.close()
        await server.close()


async def test_a_cancel_in_the_tick_the_timeout_fires_stays_a_cancel() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    by = loop.time() + 0.05
    task = asyncio.ensure_future(http1._wait(loop, fut, by, "read"))
    await asyncio.sleep(0)
    loop.call_at(by + 1e-9, task.cancel)
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_header_with_a_line_break_is_refused_before_sending() -> None:
    server, origin = await serve(_answer_ok)
    pool = Pool(limit=1)
    try:
        with pytest.raises(ValueError, match="line break"):
            await pool.request(origin, "/x", {"X-Evil": "a\r\nX-Injected: 1"}, b"{}", SLOW)
        assert server.requests == []
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)
        assert await r.read() == b"ok"
        r.close()
    finally:
        await pool.close()
        await server.close()


async def test_refused_connection_is_connection_broken() -> None:
    server, origin = await serve(_answer_ok)
    await server.close()  # nothing listens on that port any more
    pool = Pool(limit=1)
    try:
        with pytest.raises(ConnectionBroken, match="ConnectionRefusedError"):
            await pool.request(origin, "/x", {}, b"{}", SLOW)
        assert pool._busy == 0
    finally:
        await pool.close()


async def test_tls(tmp_path: Path) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    server, origin = await serve(_answer_ok, tls=server_tls)
    pool = Pool(limit=2, ssl_context=client_tls)
    try:
        for _ in range(2):
            r = await pool.request(origin, "/x", {}, b"{}", SLOW)
            assert await r.read() == b"ok"
            r.close()
        assert server.connections == 1
    finally:
        await pool.close()
        await server.close()
    untrusting = Pool(limit=1, ssl_context=ssl.create_default_context())
    server, origin = await serve(_answer_ok, tls=server_tls)
    try:
        with pytest.raises(ConnectionBroken):  # an unknown certificate is not talked to
            await untrusting.request(origin, "/x", {}, b"{}", SLOW)
        assert server.requests == []
    finally:
        await untrusting.close()
        await server.close()


def test_origin_parsing() -> None:
    o = Origin.parse("https://api.example.com/v1/")
    assert (o.scheme, o.host, o.port, o.prefix, o.host_header) == (
        "https", "api.example.com", 443, "/v1", "api.example.com")  # fmt: skip
    assert Origin.parse("http://[::1]:8080").host_header == "[::1]:8080"
    assert Origin.parse("http://h").prefix == ""
    for bad in ("ftp://h/", "http://", "localhost:80"):
        with pytest.raises(ValueError):
            Origin.parse(bad)
