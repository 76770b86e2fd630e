"""The wallet: every money move of an account, each one Lua script on that account's keys.

Amounts are integer nanodollars (see :mod:`pricing.money`). The wallet hash keeps running
totals so the contract's identity can be checked at any time, per kind of money
(docs/wallet.md):

    topups - refunds - (charges - charges_free - charges_credits) == cash
    granted - expired - charges_credits == credits

and the two streams hold every move that made those totals: the transactions (money in and
out) and the ledger (one entry per settled request; see :mod:`gateway.billing.ledger`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway import errors
from gateway.billing import records
from gateway.billing.lua_scripts import RedisPyScripts, ScriptCaller
from gateway.billing.wallet_view import (
    NEVER,
    Grant,
    Transaction,
    WalletView,
    flatten_fields,
    month_field,
    transaction_from,
)
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
    key_month: int = 0  # the key's monthly spend cap, nanodollars (0: none)

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
    """Why admission failed: ``reason`` is "balance", "rate", "monthly_limit" (the account's)
    or "key_limit" (the key's monthly cap); ``limit`` and ``spent`` say the month's figures."""

    reason: str
    available: int = 0
    limit_index: int = 0
    retry_ms: int = 0
    limit: int = 0
    spent: int = 0


@dataclass(frozen=True, slots=True)
class Settlement:
    balance: int
    cost: int
    replayed: bool
    shortfall: int = 0
    entry_id: str = ""  # the request's ledger entry


class Wallet:
    def __init__(
        self,
        redis: Any,
        scripts: ScriptCaller | None = None,
        *,
        on_ledger: Callable[[str], None] | None = None,
        ledger_retention: int = 90 * 86400,
        clock: Callable[[], int] | None = None,
    ) -> None:
        """``scripts`` runs the Lua (default: through ``redis`` itself); ``on_ledger`` hears
        of every account whose ledger got an entry (the feed's relay). ``clock`` (unix ms)
        drives the wallet's time (grant ends, hold deadlines, the month) in tests; without
        one, as in production, the scripts read Redis's clock."""
        self._redis = redis
        self._clock = clock
        self.scripts = scripts or RedisPyScripts(redis)
        self._on_ledger = on_ledger or (lambda _account: None)
        self._ledger_retention = ledger_retention
        # Settles this process has started and Redis has not yet confirmed, per account: a
        # client may have its answer before its settle's reply is back (gateway.billing.settler),
        # and its next read of the wallet must already show the charge.
        self._settling: dict[str, set[asyncio.Future[Any]]] = {}

    def clock_arg(self) -> str:
        """The scripts' clock argument: the driven time, or "0" for Redis's own."""
        return str(self._clock()) if self._clock is not None else "0"

    async def now_ms(self) -> int:
        """The wallet's time: the driven clock's, else Redis's (as the scripts read it)."""
        if self._clock is not None:
            return self._clock()
        seconds, micros = await self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

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
            k.grants,
            k.grant_order,
            k.ledger,
            k.transactions,
            k.key_spend,
        ]
        args: list[Any] = [request_id, hold, hold_ttl_ms, policy, est_tokens]
        args += limits.as_args()
        args += [record_ttl, self._ledger_retention, limits.key_month, key_id, self.clock_arg()]
        for name, value in record.items():
            args += [name, value]
        r = (await self.scripts.call("admit_v5", keys, args)).split()
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
        if status in (-4, -5):
            return Refusal("monthly_limit" if status == -4 else "key_limit",
                           limit=int(r[1]), spent=int(r[2]))  # fmt: skip
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
            k.grants, k.grant_order, k.transactions, k.key_spend,
        ]  # fmt: skip
        # ``usage`` and ``outcome`` are the ledger entry's "u" and "y" (billing.ledger).
        args: list[Any] = [
            request_id, cost, record_ttl, min(tokens, MAX_UNITS), limits.key_tpm,
            limits.account_tpm, ledger_retention or self._ledger_retention, policy, usage, outcome,
            self.clock_arg(),
        ]  # fmt: skip
        r = (await self.scripts.call("settle_v8", keys, args)).split()
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
            "renew_v2", [AccountKeys(account_id).holds], [ttl_ms, self.clock_arg(), *request_ids]
        )
        return int(r)

    async def move_money(
        self, account_id: str, *, kind: str, amount: int, order_id: str, note: str = "",
        ends_ms: int = 0, priority: int = 0, category: str = "ai", topup: str = "",
        operator: str = "",
    ) -> tuple[Transaction, bool]:  # fmt: skip
        """Top up, refund, adjust (``amount`` signed, ``note`` the reason, by ``operator``),
        grant credits (``kind`` "credit", with an optional end and a priority 0..9999) or free
        quota (``kind`` "free_quota" of a ``category``, "ai" or "cloud"), once per
        ``order_id``. A refund returns what the top-up ``topup`` (its order id) has left
        unspent, or, without one, the newest top-ups' (docs/wallet.md, "Cash lots"). Returns
        (transaction, replayed).

        Raises Conflict when the order id was used for a different move, InvalidRequest when a
        refund or a negative adjustment exceeds what may leave.
        """
        k = AccountKeys(account_id)
        r = await self.scripts.call(
            "money_move_v6",
            [k.wallet, k.order(order_id), k.transactions, k.ledger, k.grants, k.grant_order,
             k.profile, k.receipts, k.cash_lots, k.cash_lot_order, k.order(topup or order_id)],
            [kind, amount, order_id, note, self._ledger_retention, ORDER_RETENTION, ends_ms,
             priority, category, topup, operator, self.clock_arg()],
        )  # fmt: skip
        status = int(r[0])
        if status < 0:
            raise _refused(status, kind, amount, topup, int(r[1]) if len(r) > 1 else 0)
        self._on_ledger(account_id)
        fields = r[1:]  # the order's transaction: "id", its stream id, then its fields
        txn_id = as_text(dict(zip(fields[::2], fields[1::2], strict=True))["id"])
        txn = transaction_from(txn_id, fields)
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
        r = await self.scripts.call(
            "sweep_v3",
            [k.wallet, k.holds, k.hold_amounts, k.grants, k.grant_order, k.ledger,
             k.transactions],
            [self._ledger_retention, self.clock_arg()],
        )  # fmt: skip
        return int(r[0])

    async def sweep_many(self, account_ids: Sequence[str]) -> int:
        """Release expired holds of many accounts, concurrently (works on Redis Cluster)."""
        released = await asyncio.gather(*(self.sweep(a) for a in account_ids))
        return sum(released)

    async def view(self, account_id: str) -> WalletView:
        await self.settled(account_id)
        await self.sweep(account_id)
        k = AccountKeys(account_id)
        now = await self.now_ms()  # the scripts' clock
        month = month_field(now / 1000)
        fields = ["cash", "held", "topups", "refunds", "charges", month, "free_ai", "free_cloud"]
        values = await self._redis.hmget(k.wallet, fields)
        n = [int(v) if v is not None else 0 for v in values]
        return WalletView(
            cash=n[0], held=n[1], topups=n[2], refunds=n[3], charges=n[4], month_spend=n[5],
            free_ai=n[6], free_cloud=n[7], grants=await self._grants(k),
            now_ms=now,
        )  # fmt: skip

    async def _grants(self, k: AccountKeys) -> tuple[Grant, ...]:
        """The account's grants in drain order (the order zset's members carry their terms)."""
        members = [as_text(m) for m in await self._redis.zrange(k.grant_order, 0, -1)]
        if not members:
            return ()
        left = await self._redis.hmget(k.grants, [m[31:] for m in members])
        grants = []
        for member, remaining in zip(members, left, strict=True):
            ends = member[4:17]
            grants.append(Grant(id=member[31:], remaining=int(remaining or 0),
                                ends_ms=0 if ends == NEVER else int(ends),
                                priority=9999 - int(member[:4])))  # fmt: skip
        return tuple(grants)

    async def request_view(self, account_id: str, request_id: str) -> dict[str, Any] | None:
        """A request's record as the client API shows it; None when the account has none."""
        await self.settled(account_id)
        return await records.request_view(self._redis, account_id, request_id)

    async def transactions(
        self, account_id: str, *, limit: int = 100, before: str = "", types: frozenset[str] = (
            frozenset()), from_ms: int = 0, to_ms: int = 0,
    ) -> tuple[list[Transaction], str | None]:  # fmt: skip
        """Newest first: up to ``limit`` of the given ``types`` (all when empty) made from
        ``from_ms`` to ``to_ms`` (0: no bound), older than the cursor ``before``; and the
        cursor of the next page (None: no more)."""
        key = AccountKeys(account_id).transactions
        if before and all(int(half) == 0 for half in before.split("-")):
            return [], None  # nothing is older than the first id (and Redis refuses "(0-0")
        high = "(" + before if before else (str(to_ms) if to_ms else "+")
        low = str(from_ms) if from_ms else "-"
        found: list[Transaction] = []
        while True:
            batch = await self._redis.xrevrange(key, high, low, count=max(limit, 100))
            for entry_id, fields in batch:
                txn = transaction_from(as_text(entry_id), flatten_fields(fields))
                if not types or txn.type in types:
                    found.append(txn)
                    if len(found) == limit:
                        return found, txn.id
            if len(batch) < max(limit, 100):
                return found, None
            high = "(" + as_text(batch[-1][0])


def _refused(status: int, kind: str, amount: int, topup: str, figure: int) -> errors.GatewayError:
    """The error for money_move's refusal ``status`` (its header comment lists them)."""
    what = "refund" if kind == "refund" else "adjustment"
    if status == -1:
        return errors.InvalidRequest(
            f"A {what} of {format_usd(abs(amount))} USD exceeds the unspent cash that may leave "
            f"the wallet, {format_usd(figure)} USD (cash that open requests hold stays).",
            param="amount",
        )
    if status == -3:
        return errors.InvalidRequest(
            f"A refund of {format_usd(amount)} USD exceeds what the top-up {topup!r} has left "
            f"unspent and unrefunded, {format_usd(figure)} USD.",
            param="amount",
        )
    if status == -4:
        return errors.InvalidRequest(
            f"{topup!r} is not the order id of a top-up of this account.", param="topup"
        )
    return errors.InvalidRequest(
        "this move would exceed the wallet's maximum balance", param="amount"
    )
