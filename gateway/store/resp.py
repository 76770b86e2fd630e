"""RESP2, the Redis wire format: encode a command, decode replies incrementally. Pure.

Used by :mod:`gateway.store.fast_client` on the hot path (two script calls per request), where
redis-py's general machinery costs more than the round trip itself. Both directions run in
hiredis's C codec, several times faster than the same work in Python (``bench/HISTORY.md``).
"""

from __future__ import annotations

from typing import Any

import hiredis


class ReplyError(Exception):
    """An error reply (``-ERR ...``); ``code`` is its first word (e.g. NOSCRIPT)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = message.split(" ", 1)[0]


class ProtocolError(ValueError):
    """Bytes that are not RESP2 replies."""


def encode_command(*parts: Any) -> bytes:
    """One command as RESP2 bytes (str, bytes and int arguments). A float is refused, as is
    anything else: amounts and counts are integers, and a float's text would not round-trip."""
    if float in map(type, parts):  # hiredis itself refuses bool and None, but not float
        raise TypeError("cannot send float to Redis")
    return hiredis.pack_command(parts)  # type: ignore[no-any-return]


class ReplyParser:
    """Feed bytes, get complete replies (bulk strings decoded as UTF-8, invalid bytes
    replaced, like redis-py's ``decode_responses=True``). Error replies come back as
    ``ReplyError`` values; bytes that are not RESP2 raise ``ProtocolError``."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader(
            protocolError=ProtocolError, replyError=ReplyError, encoding="utf-8",
            errors="replace",
        )  # fmt: skip

    def feed(self, data: bytes) -> list[Any]:
        reader = self._reader
        reader.feed(data)
        replies = []
        while (reply := reader.gets()) is not False:  # False: no complete reply (yet)
            replies.append(reply)
        return replies
