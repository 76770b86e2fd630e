"""A raw HTTP/1.1 server on loopback that answers whatever bytes a test tells it to."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

from gateway.upstream.http1 import Origin, Pool, Timeouts

Respond = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]
SLOW = Timeouts(connect=5, read=5, first_byte=5, total=30)


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def answer_ok(_r: asyncio.StreamReader, w: asyncio.StreamWriter, _req: bytes) -> None:
    w.write(ok(b"ok"))


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


@contextlib.asynccontextmanager
async def served(
    respond: Respond,
    *,
    limit: int = 1,
    tls: ssl.SSLContext | None = None,
    client_tls: ssl.SSLContext | None = None,
) -> AsyncIterator[tuple[RawServer, Origin, Pool]]:
    """A raw server answering with ``respond``, and a pool to reach it; both closed after."""
    server = RawServer(respond)
    origin = await server.start(tls)
    pool = Pool(limit=limit, ssl_context=client_tls)
    try:
        yield server, origin, pool
    finally:
        await pool.close()
        await server.close()
