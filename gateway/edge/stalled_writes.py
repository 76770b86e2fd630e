"""Streams whose client stopped reading: cut after ``client_write_timeout``, billed as delivered.

A client that opens a stream and never reads would otherwise hold its request, its hold and an
upstream connection for as long as it likes: once the socket's buffers are full, the relay waits
in ``write`` and no upstream timeout runs. Timing every write costs a timer per chunk, so a relay
only marks when it starts and ends a write (two attribute stores), and one task per process
looks at the marks once a second. A stream stuck in one write for longer than the limit has its
client connection aborted; the write fails as if the client had hung up, and the relay bills
what reached the client (``partial``) and releases the hold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Writer(Protocol):
    """What the watcher needs of a relay."""

    @property
    def writing_since(self) -> float | None:
        """``time.monotonic()`` when the write under way began; None between writes."""

    def cut(self) -> None:
        """Abort the client connection (the blocked write then fails)."""


class StalledWrites:
    def __init__(self, timeout: float, on_cut: Callable[[], None] | None = None) -> None:
        self.timeout = timeout
        self._on_cut = on_cut
        self._writers: set[Writer] = set()

    def watch(self, writer: Writer) -> None:
        self._writers.add(writer)

    def forget(self, writer: Writer) -> None:
        self._writers.discard(writer)

    def sweep(self, now: float) -> int:
        """Cut every writer blocked since before ``now - timeout``; how many were cut."""
        since = now - self.timeout
        stalled = [w for w in self._writers
                   if w.writing_since is not None and w.writing_since < since]  # fmt: skip
        for writer in stalled:
            self._writers.discard(writer)
            writer.cut()
            if self._on_cut is not None:
                self._on_cut()
        return len(stalled)

    async def run_forever(self) -> None:
        interval = min(1.0, self.timeout / 4)
        while True:
            await asyncio.sleep(interval)
            cut = self.sweep(time.monotonic())
            if cut:
                log.warning("cut %d stream(s) whose client read nothing for %g s",
                            cut, self.timeout)  # fmt: skip
