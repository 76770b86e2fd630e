"""The forward's HTTP/1.1 client, its pool: keep-alive, slots, timeouts, cancellation, TLS.

Against raw servers on loopback (``tests.support.raw_server``) that misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.upstream.http1 import ClientTimeout, ConnectionBroken, Origin, Timeouts
from gateway.upstream.http1.wire import wait_until
from tests.support.raw_server import SLOW, answer_ok, ok, served
from tests.support.tls import self_signed


async def _never(_r: asyncio.StreamReader, _w: asyncio.StreamWriter, _req: bytes) -> None:
    await asyncio.sleep(3600)


async def test_request_bytes_and_keep_alive_reuse() -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(ok(b'{"a":1}', b"Content-Type: application/json\r\nX-Two: 1\r\nX-Two: 2\r\n"))

    async with served(respond, limit=4) as (server, origin, pool):
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


async def test_idle_connection_closed_by_the_server_is_not_used() -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(ok(b"fine"))
        await w.drain()
        w.close()  # keep-alive offered by HTTP/1.1, then the server closes while idle

    async with served(respond, limit=4) as (server, origin, pool):
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)
        assert await r.read() == b"fine"
        r.close()
        await asyncio.sleep(0.05)  # the FIN arrives while the connection is idle
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)
        assert await r.read() == b"fine"
        r.close()
        assert server.connections == 2 and len(server.requests) == 2  # nothing sent twice


@pytest.mark.parametrize(
    ("timeouts", "stage"),
    [
        (Timeouts(connect=5, read=5, first_byte=0.2, total=30), "first byte"),
        (Timeouts(connect=5, read=0.2, first_byte=5, total=30), "first byte"),
        (Timeouts(connect=5, read=5, first_byte=5, total=0.2), "first byte"),
    ],
)
async def test_no_answer_times_out_at_the_tightest_limit(timeouts: Timeouts, stage: str) -> None:
    async with served(_never) as (server, origin, pool):
        t0 = time.perf_counter()
        with pytest.raises(ClientTimeout) as caught:
            await pool.request(origin, "/x", {}, b"{}", timeouts)
        assert caught.value.stage == stage
        assert 0.15 < time.perf_counter() - t0 < 2
        server.respond = answer_ok
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)  # slot back, fresh connection
        assert await r.read() == b"ok"
        r.close()
        assert server.connections == 2


@pytest.mark.parametrize("limit", ["read", "total"])
async def test_silence_in_the_body_times_out(limit: str) -> None:
    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await w.drain()
        await asyncio.sleep(3600)

    timeouts = Timeouts(connect=5, read=0.3 if limit == "read" else 5, first_byte=5,
                        total=0.3 if limit == "total" else 30)  # fmt: skip
    async with served(respond) as (_, origin, pool):
        r = await pool.request(origin, "/x", {}, b"{}", timeouts)
        got = []
        with pytest.raises(ClientTimeout) as caught:
            async for piece in r.iter_chunks():
                got.append(piece)
        r.close()
        assert got == [b"hi"] and caught.value.stage == "read"


async def test_pool_limit_queues_then_times_out_and_keeps_its_count() -> None:
    gate = asyncio.Event()

    async def respond(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
        await gate.wait()
        w.write(ok(b"ok"))

    async with served(respond) as (server, origin, pool):
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


async def test_a_cancel_as_the_connection_opens_does_not_leak_it() -> None:
    loop = asyncio.get_running_loop()
    real = loop.create_connection
    opened: list[asyncio.BaseTransport] = []
    outer: list[asyncio.Future[object]] = []

    async def create_connection(*args: Any, **kwargs: Any) -> Any:
        transport, protocol = await real(*args, **kwargs)
        opened.append(transport)
        loop.call_soon(outer[0].cancel)  # the client leaves in the same tick
        return transport, protocol

    async with served(answer_ok) as (_, origin, pool):
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


async def test_a_cancel_in_the_tick_the_timeout_fires_stays_a_cancel() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    by = loop.time() + 0.05
    task = asyncio.ensure_future(wait_until(loop, fut, by, "read"))
    await asyncio.sleep(0)
    loop.call_at(by + 1e-9, task.cancel)
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_header_with_a_line_break_is_refused_before_sending() -> None:
    async with served(answer_ok) as (server, origin, pool):
        with pytest.raises(ValueError, match="line break"):
            await pool.request(origin, "/x", {"X-Evil": "a\r\nX-Injected: 1"}, b"{}", SLOW)
        assert server.requests == []
        r = await pool.request(origin, "/x", {}, b"{}", SLOW)
        assert await r.read() == b"ok"
        r.close()


async def test_refused_connection_is_connection_broken() -> None:
    async with served(answer_ok) as (server, origin, pool):
        await server.close()  # nothing listens on that port any more
        with pytest.raises(ConnectionBroken, match="ConnectionRefusedError"):
            await pool.request(origin, "/x", {}, b"{}", SLOW)
        assert pool._busy == 0


async def test_tls(tmp_path: Path) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    async with served(answer_ok, limit=2, tls=server_tls, client_tls=client_tls) as (
        server, origin, pool,
    ):  # fmt: skip
        for _ in range(2):
            r = await pool.request(origin, "/x", {}, b"{}", SLOW)
            assert await r.read() == b"ok"
            r.close()
        assert server.connections == 1
    untrusting = ssl.create_default_context()
    async with served(answer_ok, tls=server_tls, client_tls=untrusting) as (server, origin, pool):
        with pytest.raises(ConnectionBroken):  # an unknown certificate is not talked to
            await pool.request(origin, "/x", {}, b"{}", SLOW)
        assert server.requests == []


def test_origin_parsing() -> None:
    o = Origin.parse("https://api.example.com/v1/")
    assert (o.scheme, o.host, o.port, o.prefix, o.host_header) == (
        "https", "api.example.com", 443, "/v1", "api.example.com")  # fmt: skip
    assert Origin.parse("http://[::1]:8080").host_header == "[::1]:8080"
    assert Origin.parse("http://h").prefix == ""
    for bad in ("ftp://h/", "http://", "localhost:80"):
        with pytest.raises(ValueError):
            Origin.parse(bad)
