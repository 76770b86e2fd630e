"""The wallet: every money move of an account, each one Lua script on that account's keys.

Amounts are integer nanodollars (see :mod:`pricing.money`). The wallet hash keeps running
totals so the contract's identity can be checked at any time:

    topups - refunds - charges == cash == balance + held

and the two streams hold every move that made those totals: the transactions (money in and
out) and the ledger (one entry per settled request; see :mod:`gateway.billing.ledger`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway import errors
from gateway.billing import records
from gateway.billing.lua_scripts import RedisPyScripts, ScriptCaller
from gateway.store.keys import AccountKeys
from gateway.store.replies import as_text
from pricing import format_usd


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-minute limits; 0 means unlimited."""

    key_rpm: int = 0
    key_tpm: int = 0
    account_rpm: int = 0
    account_tpm: int = 0

    def as_args(self) -> list[int]:
        return [self.key_rpm, self.key_tpm, self.account_rpm, self.account_tpm]


ORDER_RETENTION = 400 * 86400  # seconds a replayed order id answers with its transaction
MAX_UNITS = 2**53 - 1  # the largest integer Lua (and so a wallet) handles exactly
LIMIT_NAMES = ("key RPM", "key TPM", "account RPM", "account TPM")


@dataclass(frozen=True, slots=True)
class Admission:
    available: int
    hold: int
    now_ms: int
    remaining: tuple[int, int, int, int]  # -1 where unlimited
    resets_ms: tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why admission failed: ``reason`` is "balance" or "rate"."""

    reason: str
    available: int = 0
    limit_index: int = 0
    retry_ms: int = 0


@dataclass(frozen=True, slots=True)
class Settlement:
    balance: int
    cost: int
    replayed: bool
    shortfall: int = 0
    entry_id: str = ""  # the request's ledger entry


@dataclass(frozen=True, slots=True)
class Transaction:
    id: str
    type: str
    amount: int
    order_id: str
    balance: int
    created_ms: int
    note: str

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "type": self.type,
            "amount": format_usd(self.amount),
            "order_id": self.order_id,
            "balance_after": format_usd(self.balance),
            "created_at": _iso(self.created_ms),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class WalletView:
    cash: int
    held: int
    topups: int
    refunds: int
    charges: int
    month_spend: int

    @property
    def balance(self) -> int:
        return self.cash - self.held

    def to_json(self) -> dict[str, str]:
        return {
            "balance": format_usd(self.balance),
            "cash": format_usd(self.cash),
            "credits": format_usd(0),
            "free_quota": format_usd(0),
            "held": format_usd(self.held),
            "month_spend": format_usd(self.month_spend),
        }


def month_field(now: float) -> str:
    """The wallet field of the month ``now`` (seconds, from Redis's clock) falls in."""
    return "spend:" + time.strftime("%Y-%m", time.gmtime(now))


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


class Wallet:
    def __init__(
        self,
        redis: Any,
        scripts: ScriptCaller | None = None,
        *,
        on_ledger: Callable[[str], None] | None = None,
        ledger_retention: int = 90 * 86400,
    ) -> None:
        """``scripts`` runs the Lua (default: through ``redis`` itself); ``on_ledger`` hears
        of every account whose ledger got an entry (the feed's relay)."""
        self._redis = redis
        self.scripts = scripts or RedisPyScripts(redis)
        self._on_ledger = on_ledger or (lambda _account: None)
        self._ledger_retention = ledger_retention
        # Settles this process has started and Redis has not yet confirmed, per account: a
        # client may have its answer before its settle's reply is back (gateway.billing.settler),
        # and its next read of the wallet must already show the charge.
        self._settling: dict[str, set[asyncio.Future[Any]]] = {}

    def settling(self, account_id: str, task: asyncio.Future[Any]) -> None:
        """Reads of ``account_id`` through this wallet wait for ``task`` (a settle) to end."""
        tasks = self._settling.setdefault(account_id, set())
        tasks.add(task)

        def done(_: asyncio.Future[Any]) -> None:
            tasks.discard(task)
            if not tasks and self._settling.get(account_id) is tasks:
                del self._settling[account_id]

        task.add_done_callback(done)

    async def settled(self, account_id: str) -> None:
        """Wait until the settles of ``account_id`` started in this process have ended."""
        tasks = self._settling.get(account_id)
        if tasks:
            await asyncio.wait(set(tasks))

    async def admit(
        self,
        account_id: str,
        *,
        request_id: str,
        key_id: str,
        hold: int,
        policy: str,
        est_tokens: int,
        limits: Limits,
        hold_ttl_ms: int,
        record_ttl: int,
        record: Mapping[str, str],
    ) -> Admission | Refusal:
        k = AccountKeys(account_id)
        keys = [
            k.wallet,
            k.holds,
            k.hold_amounts,
            k.request(request_id),
            k.bucket(f"key:{key_id}", "rpm"),
            k.bucket(f"key:{key_id}", "tpm"),
            k.bucket("acct", "rpm"),
            k.bucket("acct", "tpm"),
        ]
        args: list[Any] = [request_id, hold, hold_ttl_ms, policy, est_tokens]
        args += limits.as_args()
        args.append(record_ttl)
        for name, value in record.items():
            args += [name, value]
        r = (await self.scripts.call("admit_v3", keys, args)).split()
        status = int(r[0])
        if status == 1:
            return Admission(
                available=int(r[1]),
                hold=int(r[2]),
                now_ms=int(r[3]),
                remaining=(int(r[4]), int(r[5]), int(r[6]), int(r[7])),
                resets_ms=(int(r[8]), int(r[9]), int(r[10]), int(r[11])),
            )
        if status == -1:
            return Refusal("balance", available=int(r[1]))
        if status == -2:
            return Refusal("rate", limit_index=int(r[1]) - 1, retry_ms=int(r[2]))
        raise RuntimeError(f"request id {request_id} admitted twice")

    async def settle(
        self,
        account_id: str,
        *,
        request_id: str,
        key_id: str,
        cost: int,
        tokens: int,
        limits: Limits,
        record_ttl: int,
        ledger_retention: int | None = None,
        usage: str = "",
        outcome: str = "",
        policy: str = "strict",
    ) -> Settlement | None:
        """Charge ``cost`` and release the hold; idempotent on ``request_id``.

        Under "strict" the charge is cut to what the wallet can pay (``Settlement.shortfall``
        says by how much). Returns None when the request was never admitted (nothing charged;
        the id is marked used, so an admission that arrives later places no hold).
        """
        if not 0 <= cost <= MAX_UNITS:
            raise ValueError(f"cost {cost} is outside what a wallet can hold")
        k = AccountKeys(account_id)
        keys = [
            k.wallet, k.holds, k.hold_amounts, k.request(request_id), k.ledger,
            k.bucket(f"key:{key_id}", "tpm"), k.bucket("acct", "tpm"),
        ]  # fmt: skip
        # ``usage`` and ``outcome`` are the ledger entry's "u" and "y" (billing.ledger).
        args: list[Any] = [
            request_id, cost, record_ttl, min(tokens, MAX_UNITS), limits.key_tpm,
            limits.account_tpm, ledger_retention or self._ledger_retention, policy, usage, outcome,
        ]  # fmt: skip
        r = (await self.scripts.call("settle_v6", keys, args)).split()
        if int(r[0]) == -1:
            return None
        self._on_ledger(account_id)  # also on a replay: its feed mark may have been lost
        return Settlement(balance=int(r[1]), cost=int(r[2]), replayed=int(r[0]) == 0,
                          shortfall=int(r[3]), entry_id=r[4])  # fmt: skip

    async def renew(self, account_id: str, request_ids: Sequence[str], ttl_ms: int) -> int:
        """Push the deadlines of holds of requests still running; returns how many."""
        if not request_ids:
            return 0
        r = await self.scripts.call(
            "renew_v1", [AccountKeys(account_id).holds], [ttl_ms, *request_ids]
        )
        return int(r)

    async def move_money(
        self, account_id: str, *, kind: str, amount: int, order_id: str, note: str = ""
    ) -> tuple[Transaction, bool]:
        """Top up or refund once per ``order_id``. Returns (transaction, replayed).

        Raises Conflict when the order id was used for a different move, InvalidRequest when a
        refund exceeds the unspent cash.
        """
        k = AccountKeys(account_id)
        r = await self.scripts.call(
            "money_move_v3", [k.wallet, k.order(order_id), k.transactions, k.ledger],
            [kind, amount, order_id, note, self._ledger_retention, ORDER_RETENTION],
        )  # fmt: skip
        status = int(r[0])
        if status == -1:
            raise errors.InvalidRequest(
                f"refund of {format_usd(amount)} exceeds the unspent cash of "
                f"{format_usd(int(r[1]))}",
                param="amount",
            )
        if status == -2:
            raise errors.InvalidRequest(
                "this top-up would exceed the wallet's maximum balance", param="amount"
            )
        self._on_ledger(account_id)
        fields = r[1:]  # the order's transaction: "id", its stream id, then its fields
        txn = _transaction(as_text(dict(zip(fields[::2], fields[1::2], strict=True))["id"]), fields)
        if status == 0 and (txn.type != kind or txn.amount != amount):
            raise errors.Conflict(
                f"order_id {order_id!r} was already used for a {txn.type} of "
                f"{format_usd(txn.amount)}",
                param="order_id",
            )
        return txn, status == 0

    async def sweep(self, account_id: str) -> int:
        """Release the account's expired holds; returns how many."""
        k = AccountKeys(account_id)
        r = await self.scripts.call("sweep_v1", [k.wallet, k.holds, k.hold_amounts], [])
        return int(r[0])

    async def sweep_many(self, account_ids: Sequence[str]) -> int:
        """Release expired holds of many accounts, concurrently (works on Redis Cluster)."""
        released = await asyncio.gather(*(self.sweep(a) for a in account_ids))
        return sum(released)

    async def view(self, account_id: str) -> WalletView:
        await self.settled(account_id)
        await self.sweep(account_id)
        k = AccountKeys(account_id)
        seconds, _ = await self._redis.time()  # the month of Redis's clock, as settle_v5 uses
        month = month_field(seconds)
        values = await self._redis.hmget(
            k.wallet, ["cash", "held", "topups", "refunds", "charges", month]
        )
        n = [int(v) if v is not None else 0 for v in values]
        return WalletView(
            cash=n[0], held=n[1], topups=n[2], refunds=n[3], charges=n[4], month_spend=n[5]
        )

    async def request_view(self, account_id: str, request_id: str) -> dict[str, Any] | None:
        """A request's record as the client API shows it; None when the account has none."""
        await self.settled(account_id)
        return await records.request_view(self._redis, account_id, request_id)

    async def transactions(self, account_id: str, *, limit: int = 100) -> list[Transaction]:
        """Newest first."""
        entries = await self._redis.xrevrange(AccountKeys(account_id).transactions, count=limit)
        return [_transaction(as_text(entry_id), _flatten(fields)) for entry_id, fields in entries]


def _flatten(fields: Mapping[Any, Any]) -> list[Any]:
    out: list[Any] = []
    for name, value in fields.items():
        out += [name, value]
    return out


def _transaction(entry_id: str, flat: Sequence[Any]) -> Transaction:
    f = {as_text(flat[i]): as_text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
    return Transaction(
        id=entry_id,
        type=f.get("type", ""),
        amount=int(f.get("amount", "0")),
        order_id=f.get("order_id", ""),
        balance=int(f.get("balance", "0")),
        created_ms=int(f.get("ts", "0")),
        note=f.get("note", ""),
    )
