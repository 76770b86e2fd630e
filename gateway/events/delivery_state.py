"""How far an account's events have gone out: its ``delivery`` hash, read and shown (pure).

    cursor     every event of the account up to this ledger entry id is finished
    head       the first unfinished event, once it has been tried; its tries so far:
    attempts   webhook requests made          failures   failed rounds (for the backoff)
    first_ms   its first try (unix ms)         next_ms    when it may be tried again
    handled    "1" once the in-process handlers ran without error
    error      why the last try failed
    s:<id>     a finished event's record: "<state>|<attempts>|<last error>"
    kept       records left after the last prune (``lua/delivery_v1.lua``)

An account without a cursor has had no event finished yet: its events start at the start
cursor, just before webhook delivery first ran here (``feed_group.start_cursor``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.events.event import entry_key
from gateway.store.replies import as_text

STATE_FIELDS = ("cursor", "head", "attempts", "failures", "first_ms", "next_ms", "handled",
                "error")  # fmt: skip
PENDING, DELIVERED, FAILED, NO_WEBHOOK = "pending", "delivered", "failed", "no_webhook"
FINISHED = (DELIVERED, FAILED, NO_WEBHOOK)
BEFORE_START = "written before webhook delivery started here; not sent"


@dataclass(frozen=True, slots=True)
class Tries:
    """What happened to one event so far."""

    attempts: int = 0
    failures: int = 0
    first_ms: int = 0
    next_ms: int = 0
    handled: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryState:
    cursor: str | None = None
    head: str | None = None
    head_tries: Tries = field(default_factory=Tries)

    def tries(self, entry_id: str) -> Tries:
        """The tries of the event at ``entry_id`` so far (none unless it is the head)."""
        return self.head_tries if self.head == entry_id else Tries()

    def finished_through(self, start: str) -> str:
        return self.cursor or start


def parse_state(values: Sequence[Any]) -> DeliveryState:
    """From the values of ``STATE_FIELDS``, in that order."""
    cursor, head, attempts, failures, first, next_try, handled, error = (
        as_text(v) if v is not None else None for v in values
    )
    return DeliveryState(
        cursor=cursor or None,
        head=head or None,
        head_tries=Tries(
            attempts=_int(attempts), failures=_int(failures), first_ms=_int(first),
            next_ms=_int(next_try), handled=handled == "1", error=error or None,
        ),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Record:
    """An event's delivery as the events listing shows it."""

    state: str
    attempts: int = 0
    last_error: str | None = None


def record_field(entry_id: str) -> str:
    return f"s:{entry_id}"


def pack_record(state: str, attempts: int, error: str | None) -> str:
    return f"{state}|{attempts}|{error or ''}"


def unpack_record(text: str) -> Record:
    state, _, rest = text.partition("|")
    attempts, _, error = rest.partition("|")
    return Record(state, _int(attempts), error or None)


def shown(entry_id: str, stored: str | None, state: DeliveryState, start: str) -> Record:
    """The event at ``entry_id``'s delivery: its record once finished; else pending (with its
    tries when it is the head). An event at or before the cursor without a record was written
    before delivery started (or its record was pruned with its ledger entry)."""
    if stored:
        return unpack_record(stored)
    if state.head == entry_id:
        return Record(PENDING, state.head_tries.attempts, state.head_tries.error)
    if entry_key(entry_id) <= entry_key(state.finished_through(start)):
        return Record(FAILED, 0, BEFORE_START)
    return Record(PENDING)


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0
