"""A request's record: pending in its own hash, then its ledger entry (gateway.billing.ledger).

While a request runs, its record is a small hash (admit_v5). Once settled, the record is its
ledger entry, found through a marker that lives ``record_ttl`` (settle_v8); after that, by its
id alone: the id carries the admission time, and the entry comes after it in the ledger.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from gateway.billing.ledger import TOKEN_FIELDS, ChargeEntry, admission_parts
from gateway.store.keys import AccountKeys
from gateway.store.replies import as_text
from pricing import format_usd


async def request_view(redis: Any, account_id: str, request_id: str) -> dict[str, Any] | None:
    """A request's record as the client API shows it; None when the account has none."""
    k = AccountKeys(account_id)
    stored = decoded(await redis.hgetall(k.request(request_id)))
    if stored.get("status") == "pending":
        return pending_json(request_id, stored)
    if stored.get("status") == "released":
        return None  # released before it was ever admitted
    entry_id = stored.get("e")
    found = await (ledger_entry(redis, k, entry_id) if entry_id
                   else find_in_ledger(redis, k, request_id))  # fmt: skip
    return found.record_json() if found is not None else None


async def ledger_entry(redis: Any, k: AccountKeys, entry_id: str) -> ChargeEntry | None:
    rows = await redis.xrange(k.ledger, entry_id, entry_id)
    return ChargeEntry.from_fields(as_text(rows[0][0]), decoded(rows[0][1])) if rows else None


async def find_in_ledger(redis: Any, k: AccountKeys, request_id: str) -> ChargeEntry | None:
    """A request settled longer ago than its marker lives: its entry is after its admission
    time (which its id carries), usually soon after; look a bounded way forward."""
    start = admission_ms(request_id)
    if start is None:
        return None
    cursor = str(max(start - CLOCK_SKEW_MS, 0))
    # Settled within a day of its admission (journal replays included), or not looked for.
    end = str(start + LOOKUP_WINDOW_MS)
    for _ in range(LOOKUP_PAGES):
        rows = await redis.xrange(k.ledger, cursor, end, count=LOOKUP_PAGE)
        for entry_id, fields in rows:
            f = decoded(fields)
            if f.get("r") == request_id and f.get("t") == "charge":
                return ChargeEntry.from_fields(as_text(entry_id), f)
        if len(rows) < LOOKUP_PAGE:
            return None
        cursor = "(" + as_text(rows[-1][0])
    return None


CLOCK_SKEW_MS = 60_000  # a gateway host's clock may run ahead of Redis's
LOOKUP_PAGE, LOOKUP_PAGES = 1000, 50  # at most 50,000 entries read to find an old request
LOOKUP_WINDOW_MS = 86_400_000  # and none settled more than a day after the admission


def new_request_id(now_ms: int | None = None) -> str:
    """``req_`` + the admission time (ms, 11 hex digits; ``now_ms``, by default this host's
    clock) + 80 random bits: the time lets an old request be found in its account's ledger
    without an index."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"req_{ms:011x}{secrets.token_hex(10)}"


REQUEST_ID = re.compile(r"req_([0-9a-f]{11})[0-9a-f]{20}")


def admission_ms(request_id: str) -> int | None:
    """The admission time a request id carries; None for anything ``new_request_id`` could
    not have made (``int(text, 16)`` alone takes signs, ``0x``, ``_`` and spaces, and a
    negative time made Redis refuse the ledger read: a refusal that opened the breaker)."""
    match = REQUEST_ID.fullmatch(request_id)
    return int(match[1], 16) if match is not None else None


def pending_json(request_id: str, f: dict[str, str]) -> dict[str, Any]:
    """A request still pending (or whose gateway died: past its hold's deadline)."""
    endpoint, stream, version, effective, worst = admission_parts(f.get("x", ""), 5)
    held = int(f.get("hold", "0"))
    status = "pending"
    deadline = int(f.get("deadline_ms", "0") or 0)
    if deadline and time.time() * 1000 > deadline:
        status = "expired"  # its gateway died; the hold was (or will be) released
    zero = dict.fromkeys(TOKEN_FIELDS, 0)
    return {
        "id": request_id, "status": status, "model": f.get("m"), "endpoint": endpoint,
        "project": f.get("p"), "key_id": f.get("k"), "stream": stream == "1",
        "usage": {**zero, "total_tokens": 0, "images": 0, "audio_ms": 0},
        "usage_source": None, "cost": format_usd(0), "held": format_usd(held),
        "worst_case": format_usd(int(worst or 0) or held),
        "http_status": None, "anomalies": [], "price_version": version or None,
        "price_effective_from": effective or None,
        "created_ms": int(f.get("created_ms", "0") or 0), "finished_ms": None,
    }  # fmt: skip


def decoded(fields: Mapping[Any, Any]) -> dict[str, str]:
    return {as_text(a): as_text(b) for a, b in fields.items()}
