"""Keep-alive connections per origin, at most ``limit`` in use at once, and the request itself."""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping

from gateway.upstream.http1.answer import Connection, Response
from gateway.upstream.http1.wire import (
    ConnectionBroken,
    Origin,
    Timeouts,
    earliest,
    encode_head,
    wait_until,
)

KEEPALIVE = 15.0  # seconds an idle connection is kept (servers commonly close after 5 to 75 s)


class Pool:
    def __init__(self, *, limit: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._limit = limit
        self._busy = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle: dict[Origin, list[Connection]] = {}
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
        head = encode_head(origin, path, headers, len(body))
        connect_by = earliest(deadline, timeouts.connect, start)
        await self._acquire(loop, connect_by)
        try:
            conn = self._take_idle(origin, loop.time())
            if conn is None:
                conn = await self._open(loop, origin, connect_by)
        except BaseException:
            self._release()
            raise
        response = Response(conn, self._done, loop, timeouts.read, deadline)
        try:
            conn.begin(response)
            if len(body) < 65536:
                conn.transport.write(head + body)  # one send for the usual small request
            else:
                conn.transport.writelines((head, body))
            await response.wait_headers(earliest(deadline, timeouts.first_byte, start))
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

    # -- slots -----------------------------------------------------------------------------

    async def _acquire(self, loop: asyncio.AbstractEventLoop, by: float | None) -> None:
        if self._busy < self._limit and not self._waiters:
            self._busy += 1
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await wait_until(loop, waiter, by, "connect")
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

    # -- connections -----------------------------------------------------------------------

    def _take_idle(self, origin: Origin, now: float) -> Connection | None:
        conns = self._idle.get(origin)
        while conns:
            conn = conns.pop()
            if not conn.lost and now - conn.idle_since < KEEPALIVE:
                return conn
            conn.transport.close()
        return None

    async def _open(
        self, loop: asyncio.AbstractEventLoop, origin: Origin, by: float | None
    ) -> Connection:
        tls = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()  # once: it loads the CA store
            tls = self._ssl
        connecting = asyncio.ensure_future(
            loop.create_connection(
                Connection,
                origin.host,
                origin.port,
                ssl=tls,
                server_hostname=origin.host if tls else None,
            )
        )
        try:
            _, conn = await wait_until(loop, connecting, by, "connect")
        except OSError as exc:
            raise ConnectionBroken(type(exc).__name__) from exc  # not the address: it is ours
        except BaseException:  # a timeout, or our task cancelled (maybe as the connect ended)
            if connecting.done() and not connecting.cancelled() and not connecting.exception():
                connecting.result()[0].close()
            else:
                connecting.cancel()
            raise
        conn.origin = origin
        return conn

    def _done(self, conn: Connection, reusable: bool) -> None:
        """A response let go of its connection: keep it for the next request, or close it."""
        if reusable and not conn.lost and not self._closed:
            conn.resume()  # an answer may have ended while its reader held the socket back
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(conn.origin, []).append(conn)
        else:
            conn.transport.close()
        self._release()
