"""The wallet's Lua against a plain Python model of docs/wallet.md (hypothesis).

Random sequences of top-ups, credit grants (never ending, or ending a little before or after
the clock's present), ticks of a clock the test drives (so grants expire during a sequence,
also under holds admitted before their end), voucher redemptions, requests admitted and settled
(some left open while others run), refunds (of a named top-up, or of the newest ones) and
adjustments run against a real Redis through ``Wallet``, and against ``Model`` below, which
says in a few lines what the scripts do:
spendable = cash + credits not ending - held; a charge drains grants in order (those that ended
before the request was admitted are passed over), then cash; strict charges are cut to what the
request may pay; a grant past its end leaves whole once no request admitted before its end is
open; cash leaves the top-ups ("lots") oldest first, and a refund returns a named top-up's
unspent rest or the newest top-ups' first. After every step every balance agrees to the unit
(and the ledger identity holds: the redis fixture's check runs at the end).

The wallet's time is ``Clock``: the scripts read it (``Wallet(clock=...)``), the request ids
carry it, and the model reads it; it starts at Redis's time and moves only on a "tick". Holds
live far longer than all the ticks of a sequence, so none expires (the model has no reaper).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from gateway import errors
from gateway.billing.accounts import Directory
from gateway.billing.records import new_request_id
from gateway.billing.vouchers import Voucher, Vouchers
from gateway.billing.wallet import Admission, Limits, Wallet
from gateway.store.keys import AccountKeys

NEVER = 10**13  # sorts after every real end, as the scripts' "9999999999999"
HOLD_TTL_MS = 3_600_000  # far beyond the ticks of a sequence (25 x 3 s): no hold expires


@dataclass
class Clock:
    """The wallet's time (unix ms), driven by the test."""

    ms: int

    def __call__(self) -> int:
        return self.ms


@dataclass
class Grant:
    id: str
    left: int
    ends: int  # ms; 0: never
    priority: int
    created: int

    def key(self) -> tuple[int, int, int, str]:
        return (9999 - self.priority, self.ends or NEVER, self.created, self.id)


@dataclass
class Model:
    cash: int = 0
    held: int = 0
    expired: int = 0
    grants: list[Grant] = field(default_factory=list)
    holds: dict[str, tuple[int, int]] = field(default_factory=dict)  # rid -> (hold, admitted)
    # Cash lots, oldest first: [lot id, left, refundable] ("t:" a top-up, "a:" an adjustment)
    lots: list[list[Any]] = field(default_factory=list)

    def spend_cash(self, amount: int) -> None:
        """Cash leaves the lots oldest first."""
        self.cash -= amount
        for lot in self.lots:
            take = min(lot[1], amount)
            lot[1] -= take
            amount -= take
        self.lots = [lot for lot in self.lots if lot[1] > 0]

    def refund(self, amount: int, topup: str, now: int) -> list[tuple[str, int]] | None:
        """The lots a refund returns (named top-up, else the newest first), or None."""
        limit = min(self.cash, self.spendable(now) + self.ending(now))
        left = {lot[0]: lot[1] for lot in self.lots}
        if topup:
            plan = [("t:" + topup, amount)]
            if amount > left.get("t:" + topup, 0) or amount > limit:
                return None
        else:
            plan, want = [], amount
            for lot_id, n, refundable in reversed(self.lots):
                if refundable and want:
                    plan.append((lot_id, min(n, want)))
                    want -= min(n, want)
            if want or amount > limit:
                return None
        for lot_id, take in plan:
            next(lot for lot in self.lots if lot[0] == lot_id)[1] -= take
        self.lots = [lot for lot in self.lots if lot[1] > 0]
        self.cash -= amount
        return plan

    def ending(self, now: int) -> int:
        return sum(g.left for g in self.grants if 0 < g.ends <= now)

    def spendable(self, now: int) -> int:
        return self.cash + sum(g.left for g in self.grants) - self.ending(now) - self.held

    def finalise(self, now: int) -> None:
        oldest = min((a for _, a in self.holds.values()), default=None)
        for g in list(self.grants):
            if 0 < g.ends <= now and not (oldest is not None and oldest < g.ends):
                self.expired += g.left
                self.grants.remove(g)

    def admit(self, rid: str, hold: int, admitted: int) -> bool:
        self.finalise(admitted)
        available = self.spendable(admitted)
        if available <= 0 or hold > available:
            return False
        self.holds[rid] = (hold, admitted)
        self.held += hold
        return True

    def settle(self, rid: str, cost: int, now: int) -> int:
        hold, admitted = self.holds.pop(rid)
        drawable = sorted((g for g in self.grants if g.ends == 0 or g.ends > admitted),
                          key=Grant.key)  # fmt: skip
        usable = sum(g.left for g in drawable)
        cost = min(cost, max(self.cash + usable - (self.held - hold), hold))
        self.held -= hold
        rest = cost
        for g in drawable:
            take = min(g.left, rest)
            g.left -= take
            rest -= take
            if g.left == 0:
                self.grants.remove(g)
        self.spend_cash(rest)
        self.finalise(now)
        return cost


NO_LIMITS = Limits()
STEP = st.one_of(
    st.tuples(st.just("topup"), st.integers(1, 5_000)),
    # a grant's end relative to the clock (ms; None: never): past, now, or a few ticks ahead
    st.tuples(st.just("grant"), st.integers(1, 5_000), st.integers(0, 3),
              st.one_of(st.none(), st.integers(-1_000, 6_000))),
    st.tuples(st.just("open"), st.integers(1, 4_000)),
    st.tuples(st.just("close"), st.integers(0, 3), st.integers(0, 6_000)),
    st.tuples(st.just("request"), st.integers(1, 4_000), st.integers(0, 6_000)),
    st.tuples(st.just("refund"), st.integers(1, 3_000), st.integers(-1, 4)),
    st.tuples(st.just("adjust"), st.integers(-3_000, 3_000).filter(bool)),
    st.tuples(st.just("redeem"), st.integers(1, 5_000)),
)  # fmt: skip


def with_ticks(pairs: list[tuple[tuple[Any, ...], int]]) -> list[tuple[Any, ...]]:
    """Each step, then the clock's tick after it (none when 0)."""
    return [s for step, ms in pairs for s in ([step, ("tick", ms)] if ms else [step])]


# A tick after any step (rather than ticks as steps of their own) and at least 8 steps: so that
# a fifth of the sequences see a grant end under an open hold, not one in thirty.
STEPS = st.lists(st.tuples(STEP, st.one_of(st.just(0), st.integers(1, 3_000))),
                 min_size=8, max_size=25).map(with_ticks)  # fmt: skip

# A grant ends under a hold admitted before its end: the settle draws on it, then it expires.
ENDS_UNDER_A_HOLD = [("topup", 1000), ("grant", 3000, 0, 1000), ("open", 3500), ("tick", 2000),
                     ("close", 0, 100)]  # fmt: skip
# A request admitted at the very end of a grant that an older open hold keeps passes it over.
ADMITTED_AT_THE_END = [("topup", 1000), ("grant", 2000, 1, 500), ("open", 100), ("tick", 500),
                       ("request", 400, 900), ("close", 0, 0)]  # fmt: skip


async def redis_lots(redis: Any, account: str) -> list[list[Any]]:
    k = AccountKeys(account)
    left = await redis.hgetall(k.cash_lots)
    return [[lot, int(left[lot].split("|")[0]), left[lot].endswith("|1")]
            for lot in await redis.zrange(k.cash_lot_order, 0, -1)]  # fmt: skip


async def redis_ms(redis: Any) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


@pytest.mark.redis_cluster_too
@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=STEPS)
@example(steps=ENDS_UNDER_A_HOLD)
@example(steps=ADMITTED_AT_THE_END)
async def test_the_scripts_agree_with_the_model(redis: Any, steps: list[tuple[Any, ...]]) -> None:
    clock = Clock(await redis_ms(redis))
    wallet = Wallet(redis, clock=clock)
    vouchers = Vouchers(redis, wallet)
    account = (await Directory(redis).create_account({"name": "m", "plan": "p"})).id
    model, open_ids, topups = Model(), [], []

    async def admit(hold: int) -> str | None:
        rid = new_request_id(clock.ms)
        got = await wallet.admit(
            account, request_id=rid, key_id="k", hold=hold, policy="strict", est_tokens=1,
            limits=NO_LIMITS, hold_ttl_ms=HOLD_TTL_MS, record_ttl=600,
            record={"m": "x"})  # fmt: skip
        assert isinstance(got, Admission) == model.admit(rid, hold, clock.ms), (steps, model)
        return rid if isinstance(got, Admission) else None

    async def settle(rid: str, cost: int) -> None:
        if any(model.holds[rid][1] < g.ends <= clock.ms for g in model.grants):
            event("a request settled after the end of a grant it may draw on")
        got = await wallet.settle(account, request_id=rid, key_id="k", cost=cost, tokens=1,
                                  limits=NO_LIMITS, record_ttl=600)  # fmt: skip
        assert got is not None
        assert got.cost == model.settle(rid, cost, clock.ms), (steps, model)

    for n, step in enumerate(steps):
        kind = step[0]
        if kind == "topup":
            await wallet.move_money(account, kind="topup", amount=step[1], order_id=f"t{n}")
            model.cash += step[1]
            model.lots.append([f"t:t{n}", step[1], True])
            topups.append(f"t{n}")
        elif kind == "grant":
            ends = 0 if step[3] is None else clock.ms + step[3]
            await wallet.move_money(account, kind="credit", amount=step[1], order_id=f"g{n}",
                                    ends_ms=ends, priority=step[2])  # fmt: skip
            member = next(m for m in await redis.zrange(AccountKeys(account).grant_order, 0, -1)
                          if m.endswith(f":g{n}"))  # fmt: skip
            model.grants.append(Grant(f"g{n}", step[1], ends, step[2], int(member[17:30])))
        elif kind == "tick":
            clock.ms += step[1]
        elif kind == "open":
            rid = await admit(step[1])
            if rid:
                open_ids.append(rid)
        elif kind == "close" and open_ids:
            await settle(open_ids.pop(step[1] % len(open_ids)), step[2])
        elif kind == "request":
            rid = await admit(step[1])
            if rid:
                await settle(rid, step[2])
        elif kind == "refund":  # of a named top-up, or (-1, or none yet) the newest first
            topup = topups[step[2] % len(topups)] if topups and step[2] >= 0 else ""
            plan = model.refund(step[1], topup, clock.ms)
            try:
                txn, _ = await wallet.move_money(account, kind="refund", amount=step[1],
                                                 order_id=f"r{n}", topup=topup)  # fmt: skip
            except errors.InvalidRequest:
                assert plan is None, (steps, model)
            else:
                assert plan is not None, (steps, model)
                assert txn.topups == tuple((i[2:], a) for i, a in plan), (steps, txn, plan)
            assert await redis_lots(redis, account) == model.lots, (steps, model)
        elif kind == "adjust":
            limit = min(model.cash, model.spendable(clock.ms) + model.ending(clock.ms))
            try:
                await wallet.move_money(account, kind="adjustment", amount=step[1],
                                        order_id=f"a{n}", note="fix", operator="t")  # fmt: skip
            except errors.InvalidRequest:
                assert -step[1] > limit, (steps, model)
            else:
                assert -step[1] <= limit, (steps, model)
                if step[1] > 0:
                    model.cash += step[1]
                    model.lots.append([f"a:a{n}", step[1], False])
                else:
                    model.spend_cash(-step[1])
            assert await redis_lots(redis, account) == model.lots, (steps, model)
        elif kind == "redeem":  # a voucher's credit: a grant that never ends, priority 0
            code = f"V{n}-{account[:8]}".upper()
            await vouchers.create(Voucher(code, step[1], 1))
            await vouchers.redeem(account, code)
            member = next(m for m in await redis.zrange(AccountKeys(account).grant_order, 0, -1)
                          if m.endswith(f":voucher-{code}"))  # fmt: skip
            model.grants.append(Grant(f"voucher-{code}", step[1], 0, 0, int(member[17:30])))
        view = await wallet.view(account)  # sweeps: finalises what the model finalises
        model.finalise(clock.ms)
        if model.ending(clock.ms):  # what the driven clock is for: see that sequences get here
            event("a grant has ended under a hold admitted before its end")
        assert (view.cash, view.held) == (model.cash, model.held), (steps, view, model)
        assert view.balance == model.spendable(clock.ms), (steps, view, model)
        assert {g.id: g.remaining for g in view.grants} == {g.id: g.left for g in model.grants}
        expired = int(await redis.hget(AccountKeys(account).wallet, "expired") or 0)
        assert expired == model.expired, (steps, model)
    for rid in open_ids:  # leave no hold behind
        await settle(rid, 0)
