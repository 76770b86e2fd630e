"""An event as the dispatcher reads it from a ledger entry, and the webhook body it becomes (pure).

The wallet's Lua writes an event as a ledger entry with ``t`` = ``event``, ``e`` its name,
``r`` its cause and ``d`` its data as JSON (money as USD strings). Its id is not stored:
``evt_<account id>_<ledger entry id>`` is unique, stable, and known to every reader, so a
receiver can dedupe on it across retries and across dispatchers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.billing.ledger import event_id
from gateway.billing.timestamps import utc_ms


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream id as a pair that sorts the way Redis orders ids (``"0-0"`` for garbage)."""
    ms, _, seq = entry_id.partition("-")
    try:
        return int(ms or 0), int(seq or 0)
    except ValueError:
        return 0, 0


@dataclass(frozen=True, slots=True)
class Event:
    account: str
    entry_id: str  # the ledger entry's id
    name: str  # balance_alert, wallet_balance_low, monthly_limit_reached, ...
    cause: str  # the request id, the order id or the threshold that caused it
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return event_id(self.account, self.entry_id)

    @property
    def created_ms(self) -> int:
        return entry_key(self.entry_id)[0]

    @property
    def created_at(self) -> str:
        return utc_ms(self.created_ms, millis=True)


def parse_entry(account_id: str, entry_id: str, fields: Mapping[str, str]) -> Event | None:
    """The event a ledger entry holds; None for an entry of another type (a charge, a top-up).
    Data that cannot be read comes out as ``{}`` rather than stopping the account's events."""
    if fields.get("t") != "event":
        return None
    try:
        data = orjson.loads(fields.get("d") or "{}")
    except orjson.JSONDecodeError:
        data = {}
    return Event(
        account=account_id,
        entry_id=entry_id,
        name=fields.get("e", ""),
        cause=fields.get("r", ""),
        data=data if isinstance(data, dict) else {},
    )


def webhook_json(event: Event) -> dict[str, Any]:
    """``{"id", "event", "created_at", "account", "data"}``, with the data's fields also at the
    top level (where a receiver that knows one kind of event looks for them); the five names
    above win over a data field of the same name."""
    return {
        **event.data,
        "id": event.id,
        "event": event.name,
        "created_at": event.created_at,
        "account": event.account,
        "data": dict(event.data),
    }


def webhook_body(event: Event) -> bytes:
    """The exact bytes posted (and signed)."""
    return orjson.dumps(webhook_json(event))
