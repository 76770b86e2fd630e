"""What a request is made of, and how long to wait: errors, origins, timeouts, the request head.

No I/O here but ``wait_until``, which only awaits a future with a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

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


def encode_head(origin: Origin, path: str, headers: Mapping[str, str], length: int) -> bytes:
    """The request line and headers of a POST, refused if a name or value holds a line break."""
    lines = [f"POST {origin.prefix}{path} HTTP/1.1", f"Host: {origin.host_header}",
             f"Content-Length: {length}"]  # fmt: skip
    lines += [f"{name}: {value}" for name, value in headers.items()]
    text = "\r\n".join(lines)
    breaks = len(lines) - 1  # only the line ends we put there
    if text.count("\n") != breaks or text.count("\r") != breaks:
        raise ValueError("a header name or value contains a line break")
    return (text + "\r\n\r\n").encode("utf-8", "surrogateescape")


def earliest(deadline: float | None, timeout: float | None, now: float) -> float | None:
    """The sooner of ``deadline`` and ``now + timeout`` (None: no limit)."""
    if timeout is None:
        return deadline
    by = now + timeout
    return by if deadline is None or by < deadline else deadline


async def wait_until(
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
