"""The settle journal: every charge is on local disk before its answer ends, until Redis has it.

A request's settle is written here (one JSON line) before the answer's last byte leaves, and
marked done once Redis has applied it. A settle that meets an unavailable Redis stays pending
and is applied later, in order, however long Redis is away and across restarts: a gateway that
starts adopts the journals of gateway processes that are gone and replays what they left.
Settles are idempotent on the request id, so replaying one that did land changes nothing.

Each process writes its own file, ``<data dir>/journal/settles-<pid>-<start>.jsonl``, holding
an exclusive ``flock`` on it while alive; a file whose lock can be taken belongs to a dead
process. Lines are ``{"op": "settle", "id": ..., "args": {...}}`` (the last one of an id wins:
a stream's progress is journaled as it goes, then its final settle) and ``{"op": "done",
"id": ...}``. When the file grows past ``rotate_bytes`` it is rewritten with the pending
entries only.

Durability (``fsync``): ``always`` syncs every settle line before the answer ends (nothing is
lost even if the machine crashes); ``interval`` (the default) syncs once a second (a machine
crash loses at most the last second's settles; a killed process loses nothing, since the lines
are already in the kernel); ``never`` leaves it to the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

FSYNC_POLICIES = ("always", "interval", "never")


@dataclass(slots=True)
class Pending:
    """A settle not yet confirmed by Redis. ``args`` are ``Wallet.settle``'s keyword arguments
    plus ``account_id``; ``since`` is when it was first journaled (monotonic seconds)."""

    request_id: str
    args: dict[str, Any]
    since: float
    final: bool = True  # False: a stream's progress, superseded by its final settle


class Journal:
    def __init__(
        self,
        directory: Path | None,
        *,
        fsync: str = "interval",
        rotate_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        """``directory`` None keeps pending settles in memory only (tests and tools)."""
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}")
        self.directory = directory
        self.fsync = fsync
        self.rotate_bytes = rotate_bytes
        self.pending: dict[str, Pending] = {}  # insertion order is replay order
        self._fd = -1
        self._path: Path | None = None
        self._size = 0
        self._done: list[bytes] = []  # done lines not written yet (losing one costs a replay)
        self._rotate_at = rotate_bytes  # grows with what is pending, so rotations stay rare
        self._dirty = False  # written since the last fsync

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> list[Pending]:
        """Open this process's file and adopt every dead process's journal: returns what they
        left pending (now journaled here, oldest first), for the caller to replay."""
        if self.directory is None:
            return []
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd, self._path = _new_locked_file(self.directory, b"")
        return self.adopt_orphans()

    def adopt_orphans(self) -> list[Pending]:
        """Take over the journals of gateway processes that are gone (their lock is free):
        what they left pending is journaled here and returned, oldest first. Called at start
        and then now and again, so that a worker that dies is covered by its live siblings."""
        if self.directory is None or self._fd < 0:
            return []
        adopted: list[Pending] = []
        for path in sorted(self.directory.glob("settles-*.jsonl")):
            if path != self._path:
                adopted += self._adopt(path)
        return adopted

    def close(self) -> None:
        """Flush and release this process's file; it is removed when nothing is pending."""
        if self._fd < 0:
            return
        self.flush()
        if not self.pending and self._path is not None:
            with contextlib.suppress(OSError):
                self._path.unlink()
        os.close(self._fd)  # releases the lock: the next process adopts what is left
        self._fd = -1

    # -- the request path -------------------------------------------------------------------

    def record(self, request_id: str, args: dict[str, Any], *, final: bool = True) -> None:
        """Journal a settle (or a stream's progress, ``final=False``) before the answer ends."""
        earlier = self.pending.get(request_id)
        since = earlier.since if earlier is not None else time.monotonic()
        self.pending[request_id] = Pending(request_id, args, since, final)
        self._write(orjson.dumps({"op": "settle", "id": request_id, "args": args,
                                  "final": final}) + b"\n")  # fmt: skip
        if self.fsync == "always" and self._fd >= 0:
            os.fsync(self._fd)
        else:
            self._dirty = True

    def done(self, request_id: str, entry: Pending | None = None) -> None:
        """Redis has the settle (applied now, or earlier): it leaves the journal. With
        ``entry``, only if that is still the id's latest line (not a newer one since).
        Never raises: the charge is in Redis; a done line that cannot be written costs only
        a replay, which changes nothing."""
        if entry is not None and self.pending.get(request_id) is not entry:
            return
        if self.pending.pop(request_id, None) is not None:
            self._done.append(orjson.dumps({"op": "done", "id": request_id}) + b"\n")
            if len(self._done) >= 64:
                try:
                    self.flush_done()
                except OSError as exc:
                    log.error("settle journal: cannot write done lines: %s", exc)

    # -- background upkeep ------------------------------------------------------------------

    def flush_done(self) -> None:
        if self._done and self._fd >= 0:
            lines, self._done = b"".join(self._done), []
            self._write(lines)
        if self._size > self._rotate_at and self._fd >= 0:
            self._rotate()

    def flush(self) -> None:
        """Write the done lines and sync (the ``interval`` policy calls this every second)."""
        self.flush_done()
        if self._dirty and self._fd >= 0 and self.fsync != "never":
            os.fsync(self._fd)
        self._dirty = False

    async def flush_off_loop(self) -> None:
        """``flush``, with the sync in a thread: a sync waits on the disk, and the event loop
        must not (the done lines are written first, on the loop, as every write here is)."""
        self.flush_done()
        if self._dirty and self._fd >= 0 and self.fsync != "never":
            self._dirty = False
            fd = os.dup(self._fd)  # its own descriptor: a rotation may close ours meanwhile
            try:
                await asyncio.to_thread(os.fsync, fd)
            finally:
                os.close(fd)

    def oldest_age(self) -> float:
        """Seconds the oldest pending settle has waited (0 when none)."""
        for entry in self.pending.values():
            return time.monotonic() - entry.since
        return 0.0

    # -- internals --------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._fd < 0:
            return
        try:
            _write_all(self._fd, data)
        except OSError:
            # A torn line would glue onto the next one and lose both: cut it off.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    def _rotate(self) -> None:
        """Rewrite this process's journal with the pending entries only."""
        assert self._path is not None and self.directory is not None
        lines = b"".join(orjson.dumps({"op": "settle", "id": p.request_id, "args": p.args,
                                       "final": p.final}) + b"\n"
                         for p in self.pending.values())  # fmt: skip
        fd, fresh = _new_locked_file(self.directory, lines)
        old_fd, old_path = self._fd, self._path
        self._fd, self._path, self._size = fd, fresh, len(lines)
        self._rotate_at = max(self.rotate_bytes, 2 * len(lines))
        old_path.unlink()
        os.close(old_fd)

    def _adopt(self, path: Path) -> list[Pending]:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return []  # its process is alive
            if not path.exists():
                return []  # adopted by another process between the glob and the lock
            left = list(read_pending(path.read_bytes()))
            for entry in left:
                self.record(entry.request_id, entry.args, final=entry.final)
            if left:
                os.fsync(self._fd)
            path.unlink()
            if left:
                log.warning("adopted %d unsettled charge(s) from %s", len(left), path.name)
            return [self.pending[e.request_id] for e in left]
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    while written < len(data):  # a short write: rare, but a torn line would be lost
        written += os.write(fd, data[written:])


def _new_locked_file(directory: Path, content: bytes) -> tuple[int, Path]:
    """A new journal file with ``content``, locked before it can be seen: it is made under a
    name that adoption does not look at, locked, synced, and only then renamed into view (a
    sibling could otherwise adopt, and delete, a file its owner is about to write)."""
    stamp = f"{os.getpid()}-{time.time_ns()}"
    hidden = directory / f".new-{stamp}.jsonl"
    fd = os.open(hidden, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if content:
        _write_all(fd, content)
        os.fsync(fd)
    path = directory / f"settles-{stamp}.jsonl"
    os.rename(hidden, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
    return fd, path


def read_pending(data: bytes) -> Iterator[Pending]:
    """The settles a journal file leaves pending, in order. A torn last line (a crash in the
    middle of a write) is skipped: its answer had not ended."""
    pending: dict[str, Pending] = {}
    now = time.monotonic()
    for line in data.splitlines():
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        if item.get("op") == "settle" and isinstance(item.get("args"), dict):
            pending[item["id"]] = Pending(item["id"], item["args"], now, item.get("final", True))
        elif item.get("op") == "done":
            pending.pop(item["id"], None)
    yield from pending.values()
