"""A lean Redis client for the wallet's scripts: one pipelined connection, RESP2, nothing else.

Every metered request runs two scripts. redis-py spends several times the round trip on
connection-pool bookkeeping, timeouts built on ``wait_for`` and general-purpose parsing; this
client writes each EVALSHA straight onto one connection and resolves replies in order (Redis
answers a connection's commands in the order sent). Its failures are mapped by
``gateway.store.redis_errors.classify``, as redis-py's are for the scripts run through it, so the
rest of the gateway sees one set of errors whichever client runs. Single Redis only; a
cluster uses redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import deque
from typing import Any

from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.store.redis_errors import classify
from gateway.store.resp import ReplyError, ReplyParser, encode_command


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: FastScripts) -> None:
        self.owner = owner
        self.parser = ReplyParser()
        self.pending: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self.transport: Any = None  # asyncio's or uvloop's transport (uvloop's is no subclass)
        self.outbox: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pending = self.pending
        for reply in self.parser.feed(data):
            if not pending:
                break
            _, future = pending.popleft()
            if not future.done():
                future.set_result(reply)

    def flush(self) -> None:
        data = b"".join(self.outbox)
        self.outbox.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        else:
            self.fail(RedisConnectionError("Redis connection closed"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Redis connection lost: {exc or 'closed'}"))
        self.owner.forget(self)

    def fail(self, error: Exception) -> None:
        while self.pending:
            _, future = self.pending.popleft()
            if not future.done():
                future.set_exception(error)


class FastScripts:
    """Runs registered Lua scripts by SHA, loading them on NOSCRIPT."""

    def __init__(self, url: str, sources: dict[str, str], *, timeout: float = 2.0) -> None:
        options = parse_url(url)  # type: ignore[no-untyped-call]
        self._path: str | None = options.get("path")
        self._host = options.get("host", "127.0.0.1")
        self._port = int(options.get("port", 6379))
        self._db = int(options.get("db", 0) or 0)
        self._password: str | None = options.get("password")
        self._username: str | None = options.get("username")
        self._timeout = timeout
        self._sources = sources
        self._shas = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in sources.items()}
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._watchdog: asyncio.Task[None] | None = None

    @staticmethod
    def supports(url: str) -> bool:
        return url.startswith(("redis://", "unix://"))

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script; raises ``StoreUnavailable`` or ``StoreRefused`` (store.redis_errors)."""
        sha = self._shas[name]
        try:
            reply = await self._send(encode_command("EVALSHA", sha, len(keys), *keys, *args))
            if isinstance(reply, ReplyError) and reply.code == "NOSCRIPT":
                # A restarted or failed-over Redis: load and run once more.
                reply = await self._send(encode_command("EVAL", self._sources[name], len(keys),
                                                        *keys, *args))  # fmt: skip
        except RedisError as exc:
            raise classify(exc) from exc
        if isinstance(reply, ReplyError):
            raise classify(ResponseError(str(reply)))
        return reply

    async def _send(self, command: bytes) -> Any:
        proto = self._proto or await self._connect()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        proto.pending.append((time.monotonic(), future))
        # Commands issued in the same loop iteration leave in one write (one syscall): under
        # load many requests admit or settle at once.
        if not proto.outbox:
            loop.call_soon(proto.flush)
        proto.outbox.append(command)
        return await future

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._proto is not None:
                return self._proto
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self._timeout):
                    if self._path:
                        _, proto = await loop.create_unix_connection(
                            lambda: _Protocol(self), self._path
                        )
                    else:
                        _, proto = await loop.create_connection(
                            lambda: _Protocol(self), self._host, self._port
                        )
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
            assert proto.transport is not None
            hello: list[bytes] = []
            if self._password:
                auth = [self._username] if self._username else []
                hello.append(encode_command("AUTH", *auth, self._password))
            if self._db:
                hello.append(encode_command("SELECT", self._db))
            self._proto = proto
            for command in hello:
                reply = await self._send(command)
                if isinstance(reply, ReplyError):
                    proto.transport.close()
                    raise RedisConnectionError(f"Redis refused the connection: {reply}")
            if self._watchdog is None or self._watchdog.done():
                self._watchdog = asyncio.create_task(self._watch())
            return proto

    def forget(self, proto: _Protocol) -> None:
        if self._proto is proto:
            self._proto = None

    async def _watch(self) -> None:
        """Fail everything waiting on a Redis that stopped answering (no reply in time)."""
        while True:
            await asyncio.sleep(self._timeout / 4)
            proto = self._proto
            if proto is None or not proto.pending:
                continue
            if time.monotonic() - proto.pending[0][0] > self._timeout:
                proto.fail(RedisTimeoutError("Redis did not answer in time"))
                self.forget(proto)
                if proto.transport is not None:
                    proto.transport.abort()

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None
