"""The settle journal on disk: what a dead process leaves is adopted once, in order."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from gateway.billing.journal import Journal, read_pending


def args(n: int) -> dict[str, object]:
    return {"account_id": "a", "request_id": f"r{n}", "cost": n}


def test_pending_until_done_and_flushed(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert journal.open() == []
    journal.record("r1", args(1))
    journal.record("r2", args(2))
    journal.done("r1")
    journal.flush()
    assert list(journal.pending) == ["r2"]
    (path,) = tmp_path.glob("settles-*.jsonl")
    assert [p.request_id for p in read_pending(path.read_bytes())] == ["r2"]
    journal.close()
    assert path.exists()  # something is pending: the file stays for the next start


def test_a_clean_close_leaves_no_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.record("r1", args(1))
    journal.done("r1")
    journal.close()
    assert list(tmp_path.iterdir()) == []


def test_a_dead_process_journal_is_adopted_in_order_once(tmp_path: Path) -> None:
    dead = Journal(tmp_path)
    dead.open()
    for n in range(5):
        dead.record(f"r{n}", args(n))
    dead.done("r1")
    dead.record("r3", {**args(3), "cost": 33})  # the last line of an id wins
    dead.flush()
    os.close(dead._fd)  # killed: no close(), its lock goes with the process

    first, second = Journal(tmp_path), Journal(tmp_path)
    adopted = first.open()
    assert [p.request_id for p in adopted] == ["r0", "r2", "r3", "r4"]
    assert next(p for p in adopted if p.request_id == "r3").args["cost"] == 33
    assert second.open() == []  # adopted once: the dead file is gone
    assert len(list(tmp_path.glob("settles-*.jsonl"))) == 2
    first.close()
    second.close()


def test_a_live_process_journal_is_left_alone(tmp_path: Path) -> None:
    live = Journal(tmp_path)
    live.open()
    live.record("r1", args(1))
    other = Journal(tmp_path)
    assert other.open() == []
    assert list(live.pending) == ["r1"]
    live.close()
    other.close()


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "settles-1-1.jsonl"
    path.write_bytes(b'{"op":"settle","id":"r1","args":{"cost":1}}\n{"op":"settle","id":"r2","ar')
    assert [p.request_id for p in read_pending(path.read_bytes())] == ["r1"]


def test_rotation_keeps_only_what_is_pending(tmp_path: Path) -> None:
    journal = Journal(tmp_path, rotate_bytes=2000)
    journal.open()
    for n in range(100):
        journal.record(f"r{n}", args(n))
        if n != 42:
            journal.done(f"r{n}")
    journal.flush()
    (path,) = tmp_path.glob("settles-*.jsonl")
    assert path.stat().st_size < 2000
    assert [p.request_id for p in read_pending(path.read_bytes())] == ["r42"]
    with open(path, "rb") as handle, pytest.raises(BlockingIOError):
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # still locked by its owner
    journal.close()


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_every_fsync_policy_writes_before_returning(tmp_path: Path, policy: str) -> None:
    journal = Journal(tmp_path, fsync=policy)
    journal.open()
    journal.record("r1", args(1))
    (path,) = tmp_path.glob("settles-*.jsonl")
    # In the kernel before record() returns: a killed process loses nothing.
    assert [p.request_id for p in read_pending(path.read_bytes())] == ["r1"]
    journal.close()


def test_memory_only_journal_keeps_pending(tmp_path: Path) -> None:
    journal = Journal(None)
    assert journal.open() == []
    journal.record("r1", args(1))
    assert journal.oldest_age() >= 0 and list(journal.pending) == ["r1"]
    journal.done("r1")
    journal.close()
    assert journal.pending == {}


def test_a_live_process_adopts_a_sibling_that_died_later(tmp_path: Path) -> None:
    live, sibling = Journal(tmp_path), Journal(tmp_path)
    live.open()
    sibling.open()
    sibling.record("r1", args(1))
    assert live.adopt_orphans() == []  # alive: left alone
    os.close(sibling._fd)  # dies
    assert [p.request_id for p in live.adopt_orphans()] == ["r1"]
    assert list(live.pending) == ["r1"]
    live.close()


def test_done_for_a_line_that_was_replaced_meanwhile_keeps_the_newer(tmp_path: Path) -> None:
    """A replay applied a stream's progress while its final settle was journaled: the final
    one stays pending (and is applied next), it is not marked done with the progress."""
    journal = Journal(tmp_path)
    journal.open()
    journal.record("r1", args(1), final=False)
    progress = journal.pending["r1"]
    journal.record("r1", {**args(1), "cost": 9})  # the final settle, meanwhile
    journal.done("r1", progress)
    assert journal.pending["r1"].args["cost"] == 9 and journal.pending["r1"].final
    journal.done("r1", journal.pending["r1"])
    assert journal.pending == {}
    journal.close()


def test_a_file_being_created_is_never_adopted(tmp_path: Path) -> None:
    """New files are made under a name adoption skips and renamed once locked."""
    (tmp_path / ".new-1-1.jsonl").write_bytes(b'{"op":"settle","id":"r1","args":{}}\n')
    journal = Journal(tmp_path)
    assert journal.open() == []
    assert (tmp_path / ".new-1-1.jsonl").exists()
    journal.close()
