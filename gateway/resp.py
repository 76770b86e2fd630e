"""RESP2, the Redis wire format: encode a command, decode replies incrementally. Pure.

Used by :mod:`gateway.fastredis` on the hot path (two script calls per request), where
redis-py's general machinery costs more than the round trip itself.
"""

from __future__ import annotations

from typing import Any


class ReplyError(Exception):
    """An error reply (``-ERR ...``); ``code`` is its first word (e.g. NOSCRIPT)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = message.split(" ", 1)[0]


def encode_command(*parts: Any) -> bytes:
    """One command as RESP2 bytes (str, bytes and int arguments)."""
    out = [b"*%d\r\n" % len(parts)]
    append = out.append
    for value in parts:
        kind = type(value)
        if kind is str:
            data = value.encode()
        elif kind is bytes:
            data = value
        elif kind is int:
            data = b"%d" % value
        else:
            raise TypeError(f"cannot send {kind.__name__} to Redis")
        append(b"$%d\r\n" % len(data))
        append(data)
        append(b"\r\n")
    return b"".join(out)


class _Incomplete(Exception):
    pass


class ReplyParser:
    """Feed bytes, get complete replies (bulk strings decoded as UTF-8, like redis-py's
    ``decode_responses=True``). Error replies come back as ``ReplyError`` values."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[Any]:
        self._buf = self._buf + data if self._buf else data
        replies = []
        pos = 0
        buf = self._buf
        while pos < len(buf):
            try:
                value, pos_after = self._parse(buf, pos)
            except _Incomplete:
                break
            replies.append(value)
            pos = pos_after
        self._buf = buf[pos:]
        return replies

    def _parse(self, buf: bytes, pos: int) -> tuple[Any, int]:
        end = buf.find(b"\r\n", pos)
        if end < 0:
            raise _Incomplete
        kind = buf[pos]
        line = buf[pos + 1 : end]
        after = end + 2
        if kind == 43:  # '+'
            return line.decode(), after
        if kind == 58:  # ':'
            return int(line), after
        if kind == 36:  # '$'
            size = int(line)
            if size < 0:
                return None, after
            if len(buf) < after + size + 2:
                raise _Incomplete
            return buf[after : after + size].decode("utf-8", "replace"), after + size + 2
        if kind == 42:  # '*'
            count = int(line)
            if count < 0:
                return None, after
            items = []
            for _ in range(count):
                item, after = self._parse(buf, after)
                items.append(item)
            return items, after
        if kind == 45:  # '-'
            return ReplyError(line.decode("utf-8", "replace")), after
        raise ValueError(f"not a RESP2 reply: {buf[pos : pos + 20]!r}")
