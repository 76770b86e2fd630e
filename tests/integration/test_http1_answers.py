"""The forward's HTTP/1.1 client, reading answers: streams, flow control, and every way an
answer can be odd or broken (interim, unasked, sloppy, malformed, cut, reset, oversized).

Against raw servers on loopback (``tests.support.raw_server``) that misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
import weakref

import pytest

from gateway.upstream.http1 import PAUSE_AT, ConnectionBroken, Timeouts
from tests.support.raw_server import SLOW, answer_ok, ok, served


async def test_chunked_stream_arrives_piece_by_piece() -> None:
    release = asyncio.Event()

    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: text/event-stream\r\n\r\n5\r\nfirst\r\n")  # fmt: skip
        await w.drain()
        await release.wait()
        w.write(b"6\r\nsecond\r\n0\r\n\r\n")

    async with served(respond, limit=4) as (server, origin, pool):
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


async def test_interim_answers_are_skipped() -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
                b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final", b"X-Final: 1\r\n"))  # fmt: skip

    async with served(respond) as (server, origin, pool):
        for _ in range(2):  # and the connection is still good for the next request
            r = await pool.request(origin, "/x", {}, b"{}", SLOW)
            assert (r.status, r.headers.get("x-final"), r.headers.get("link")) == (200, "1", None)
            assert await r.read() == b"final"
            r.close()
        assert server.connections == 1


async def test_an_unasked_second_answer_is_not_read_as_body_and_the_connection_dropped() -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(ok(b"mine") + ok(b"not asked for"))  # one segment: both reach the parser

    async with served(respond) as (server, origin, pool):
        for _ in range(2):
            r = await pool.request(origin, "/x", {}, b"{}", SLOW)
            assert (r.status, await r.read()) == (200, b"mine")
            r.close()
        assert server.connections == 2  # the first connection was not trusted again


async def test_answer_delimited_by_close_is_read_whole_and_not_reused() -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await w.drain()
        w.close()

    async with served(respond, limit=4) as (server, origin, pool):
        for _ in range(2):
            r = await pool.request(origin, "/x", {}, b"{}", SLOW)
            assert await r.read() == b"until the end"
            r.close()
        assert server.connections == 2


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

    async with served(respond) as (server, origin, pool):
        with pytest.raises(ConnectionBroken):
            r = await pool.request(origin, "/x", {}, b"{}", SLOW)
            try:
                await r.read()
            finally:
                r.close()
        server.respond = answer_ok
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)  # the one slot was given back
        assert await r.read() == b"ok"
        r.close()


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

    async with served(respond) as (_server, origin, pool):
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

    async with served(respond) as (_server, origin, pool):
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

    async with served(respond) as (_server, origin, pool):
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)
        assert (r.status, await r.read()) == (200, b"ok")
        r.close()


async def test_unasked_upgrade_is_a_clean_connection_broken(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n")  # fmt: skip

    async with served(respond) as (_server, origin, pool):
        with pytest.raises(ConnectionBroken):
            await pool.request(origin, "/x", {}, b"{}", Timeouts(5, 1, 1, 5))
        assert not [rec for rec in caplog.records if rec.levelname == "ERROR"]
        assert pool._busy == 0


async def test_headers_past_the_limit_are_refused() -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: 1\r\n" * 200 + b"Content-Length: 2\r\n\r\nok")

    async with served(respond) as (_server, origin, pool):
        with pytest.raises(ConnectionBroken, match="malformed"):
            await pool.request(origin, "/x", {}, b"{}", SLOW)


async def test_a_reset_cuts_an_answer_that_ends_with_the_connection() -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart of it")
        await w.drain()
        await asyncio.sleep(0.05)
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()  # RST, not FIN: the answer did not end

    async with served(respond) as (_server, origin, pool):
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)
        with pytest.raises(ConnectionBroken):
            await r.read()
        r.close()


@pytest.mark.parametrize("how", ["read", "iter_chunks", "closed unread"])
async def test_a_closed_answer_is_freed_without_the_garbage_collector(how: str) -> None:
    """An answer and its parser must not keep each other alive once the answer is closed: a
    cycle per request left ~20 objects for the collector, whose pauses (~0.5 ms, one every ~90
    requests) landed on requests."""

    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n")  # fmt: skip

    async with served(respond) as (_server, origin, pool):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            r = await pool.request(origin, "/x", {}, b"{}", SLOW)
            if how == "read":
                assert await r.read() == b"firstsecond"
            elif how == "iter_chunks":
                assert b"".join([piece async for piece in r.iter_chunks()]) == b"firstsecond"
            r.close()
            freed = weakref.ref(r)
            del r
            assert freed() is None
        finally:
            if was_enabled:
                gc.enable()
