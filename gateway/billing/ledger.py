"""The ledger entry: one compact line per charge or money movement, in each account's stream.

Everything the wallet answers from hangs off this entry: a request's record
(``GET /v1/requests/{id}``), usage rollups, the export (``GET /admin/ledger``), webhooks. It
is written by the same Lua call that moves the money, so it can never disagree with the
wallet. A charge entry (``t`` = ``charge``; every settled request has one, zero-cost ones
included) has these fields, all strings:

====  ====================================================================================
t     type: ``charge`` (and, with the wallet issues, ``topup``, ``refund``, ``credit``, ...)
r     the request id
k     the API key's id            p   its project          m   the model billed
u     usage: ``input,output,cache_read,cache_write,cache_write_1h,reasoning,images,audio_ms``
      then ``;`` and the image variant (empty when none)
x     admission facts: ``endpoint|stream|price_version|price_effective_from|worst_case|``
      ``created_ms|hold`` (``worst_case``: the full worst-case cost when the hold was capped
      below it, ``gateway.billing.holds``; else empty; entries written before it existed
      have six parts)
y     outcome: ``status|usage_source|http_status|finished_ms|anomalies|shortfall``; a record's
      shortfall adds what a ``cost_capped`` anomaly cut (a cost above a wallet's 2^53 units)
      (``anomalies``: a JSON list, empty when none; entries written before it existed have
      five parts)
a     the amount charged (integer nanodollars)
s     how ``a`` was drawn: ``free_quota,credits,cash`` (integers; they add up to ``a``)
g     the credit grants drawn: ``id:amount;...`` (empty when none; settle_v7 on)
b     the spendable balance right after (nanodollars, may be negative when postpaid)
====  ====================================================================================

Every charge entry has the same fields in the same order, so Redis stores the names once per
stream node and each entry costs only its values (``bench/`` measures the bytes). ``|`` and
``%`` inside a value are percent-escaped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import orjson

from pricing import Usage, format_usd

USAGE_FIELDS = (
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "cache_write_1h_tokens", "reasoning_tokens", "images", "audio_ms",
)  # fmt: skip
TOKEN_FIELDS = USAGE_FIELDS[:6]


def pack(*parts: object) -> str:
    """Join values with ``|``, escaping what would split them (``%`` and ``|`` only)."""
    return "|".join(_escape(str(p)) if p is not None else "" for p in parts)


def _escape(text: str) -> str:
    # The common case, no ``|`` or ``%``, costs a scan instead of a quote() per field.
    return text if "|" not in text and "%" not in text else quote(text, safe="")


def unpack(packed: str, count: int) -> list[str]:
    parts = [unquote(p) for p in packed.split("|")] if packed else []
    return parts + [""] * (count - len(parts))


def usage_field(usage: Usage) -> str:
    counts = ",".join(str(getattr(usage, name)) for name in USAGE_FIELDS)
    return f"{counts};{usage.image_variant or ''}"


def admission_field(endpoint: str, stream: bool, price_version: str,
                    price_effective_from: str | None,
                    worst_case: int | None = None) -> str:  # fmt: skip
    """``x`` as the pending record keeps it; the settle appends ``created_ms|hold``.
    ``worst_case``: the full worst case of a hold that was capped below it (else None)."""
    return pack(endpoint, int(stream), price_version, price_effective_from or "", worst_case)


def admission_parts(packed: str, count: int) -> list[str]:
    """``x``'s parts, the ``worst_case`` one empty in what was written before it existed."""
    parts = unpack(packed, count)
    if packed.count("|") == count - 2:  # no worst_case part
        parts = [*parts[:4], "", *parts[4 : count - 1]]
    return parts


def outcome_field(status: str, usage_source: str, http_status: int, finished_ms: int,
                  anomalies: list[dict[str, str]] | None = None) -> str:  # fmt: skip
    """``y`` as the settle is given it; the script appends ``|shortfall``."""
    odd = orjson.dumps(anomalies).decode() if anomalies else ""
    return pack(status, usage_source, http_status, finished_ms, odd)


def _outcome(packed: str) -> tuple[str, str, str, str, list[Any], str]:
    parts = unpack(packed, 6)
    if packed.count("|") == 4:  # written before anomalies were recorded
        parts = [*parts[:4], "", parts[4]]
    status, source, http, finished, odd, shortfall = parts[:6]
    try:
        anomalies = orjson.loads(odd) if odd else []
    except orjson.JSONDecodeError:
        anomalies = [{"kind": "unreadable", "detail": odd}]
    return status, source, http, finished, anomalies, shortfall


def _grants_drawn(field: str) -> tuple[tuple[str, int], ...]:
    drawn = []
    for part in field.split(";") if field else []:
        grant, _, amount = part.rpartition(":")
        drawn.append((grant, _int(amount)))
    return tuple(drawn)


def _cut_by_cap(anomalies: list[Any]) -> int:
    """What a ``cost_capped`` anomaly cut (the settle's own shortfall is a strict wallet's)."""
    cut = 0
    for odd in anomalies:
        if isinstance(odd, dict) and odd.get("kind") == "cost_capped":
            with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                cut += int(orjson.loads(odd["detail"])["cut"])
    return cut


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class ChargeEntry:
    """A charge entry read back from the stream."""

    entry_id: str
    request_id: str
    key_id: str
    project: str
    model: str
    usage: dict[str, int]
    image_variant: str
    endpoint: str
    stream: bool
    price_version: str
    price_effective_from: str
    created_ms: int
    hold: int
    status: str
    usage_source: str
    http_status: int
    finished_ms: int
    anomalies: list[Any]
    shortfall: int
    amount: int
    split: tuple[int, int, int]  # free quota, credits, cash
    balance: int
    grants: tuple[tuple[str, int], ...] = ()  # (grant id, amount drawn), in drain order
    worst_case: int = 0  # the full worst case; above ``hold`` when the hold was capped

    @classmethod
    def from_fields(cls, entry_id: str, f: dict[str, str]) -> ChargeEntry:
        counts, _, variant = f.get("u", "").partition(";")
        numbers = [_int(n) for n in counts.split(",")] if counts else []
        numbers += [0] * (len(USAGE_FIELDS) - len(numbers))
        x = admission_parts(f.get("x", ""), 7)
        endpoint, stream, version, effective, worst, created, hold = x
        status, source, http, finished, anomalies, shortfall = _outcome(f.get("y", ""))
        split = [_int(n) for n in f.get("s", "").split(",")] + [0, 0, 0]
        return cls(
            entry_id=entry_id, request_id=f.get("r", ""), key_id=f.get("k", ""),
            project=f.get("p", ""), model=f.get("m", ""),
            usage=dict(zip(USAGE_FIELDS, numbers, strict=True)), image_variant=variant,
            endpoint=endpoint, stream=stream == "1", price_version=version,
            price_effective_from=effective, created_ms=_int(created), hold=_int(hold),
            worst_case=_int(worst) or _int(hold),
            status=status, usage_source=source, http_status=_int(http),
            finished_ms=_int(finished), anomalies=anomalies,
            shortfall=_int(shortfall) + _cut_by_cap(anomalies),
            amount=_int(f.get("a", "0")),
            split=(split[0], split[1], split[2]), balance=_int(f.get("b", "0")),
            grants=_grants_drawn(f.get("g", "")),
        )  # fmt: skip

    def record_json(self) -> dict[str, Any]:
        """The request's record as ``GET /v1/requests/{id}`` shows it."""
        tokens = {name: self.usage[name] for name in TOKEN_FIELDS}
        tokens["total_tokens"] = sum(v for k, v in tokens.items() if k != "reasoning_tokens")
        units: dict[str, object] = {"images": self.usage["images"],
                                    "audio_ms": self.usage["audio_ms"]}  # fmt: skip
        if self.image_variant:
            units["image_variant"] = self.image_variant
        return {
            "id": self.request_id, "status": self.status, "model": self.model,
            "endpoint": self.endpoint, "project": self.project, "key_id": self.key_id,
            "stream": self.stream, "usage": {**tokens, **units},
            "usage_source": self.usage_source, "cost": format_usd(self.amount),
            "cost_by_source": self.split_json(),
            "cost_by_grant": {g: format_usd(n) for g, n in self.grants},
            "held": format_usd(self.hold), "worst_case": format_usd(self.worst_case),
            "shortfall": format_usd(self.shortfall), "anomalies": self.anomalies,
            "http_status": self.http_status or None,
            "price_version": self.price_version or None,
            "price_effective_from": self.price_effective_from or None,
            "created_ms": self.created_ms, "finished_ms": self.finished_ms or None,
            "ledger_entry": self.entry_id,
        }  # fmt: skip

    def split_json(self) -> dict[str, str]:
        return _split_json(*self.split)


def export_json(cursor: str, account: str, entry_id: str, f: dict[str, str]) -> dict[str, Any]:
    """One line of ``GET /admin/ledger``: any entry, with the feed cursor it was read at."""
    created_ms = int(entry_id.partition("-")[0] or 0)
    line: dict[str, Any] = {
        "cursor": cursor, "account": account, "entry": entry_id, "type": f.get("t", ""),
        "amount": format_usd(_int(f.get("a", "0"))),
        "balance_after": format_usd(_int(f.get("b", "0"))), "created_ms": created_ms,
    }  # fmt: skip
    if f.get("t") != "charge":
        split = [_int(n) for n in f.get("s", "").split(",")] + [0, 0, 0]
        line.update(order_id=f.get("r", ""), note=f.get("n", ""),
                    source=_split_json(split[0], split[1], split[2]))  # fmt: skip
        if "l" in f:  # a refund's top-ups (money_move_v6)
            line["topups"] = [{"order_id": o or None, "amount": format_usd(n)}
                              for o, n in returned_lots(f["l"])]  # fmt: skip
        if "o" in f:  # an adjustment's operator
            line["operator"] = f["o"]
        if f.get("t") == "event":  # docs/guards.md: its name, id and data
            line.update(event=f.get("e", ""), event_id=event_id(account, entry_id),
                        data=orjson.loads(f.get("d") or "{}"))  # fmt: skip
        return line
    e = ChargeEntry.from_fields(entry_id, f)
    line.update(
        request_id=e.request_id, model=e.model, project=e.project, key_id=e.key_id,
        tokens={name: e.usage[name] for name in TOKEN_FIELDS}, images=e.usage["images"],
        audio_ms=e.usage["audio_ms"], status=e.status, usage_source=e.usage_source,
        source=e.split_json(), shortfall=format_usd(e.shortfall), anomalies=e.anomalies,
        grants={g: format_usd(n) for g, n in e.grants},
    )  # fmt: skip
    return line


def _split_json(free: int, credits: int, cash: int) -> dict[str, str]:
    return {"free_quota": format_usd(free), "credits": format_usd(credits),
            "cash": format_usd(cash)}  # fmt: skip


def returned_lots(packed: str) -> tuple[tuple[str, int], ...]:
    """A refund's top-ups as money_move_v6 writes them, ``[["order id", "amount"], ...]``:
    (order id, "" for cash from before lots; amount)."""
    if not packed:
        return ()
    return tuple((str(order), int(amount)) for order, amount in orjson.loads(packed))


def event_id(account_id: str, entry_id: str) -> str:
    """An event's id (docs/guards.md): unique, stable, and known to every reader."""
    return f"evt_{account_id}_{entry_id}"
