"""The contract's ledger identity, checked from Redis after every test that touched money."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.store.keys import AccountKeys, accounts_index


async def assert_ledger_identity(redis: Any) -> int:
    """For every account, per kind of money (docs/wallet.md): the wallet's totals agree with
    the ledger (where each request appears once, each charge's split by kind adds up to it,
    and the grants it names add up to its credits part; the transactions stream lists its
    money moves), and

        cash == topups - refunds + adjustments - charges from cash == what the cash lots
            hold, less what was spent since the last money move
        credits == granted - expired - charges from credits == what the grants hold
        free quota == free quota granted - free quota expired - charges from free quota
        topups + adjustments + granted + free granted - refunds - expired - free expired - charges
            == balance + held

    Returns the number of accounts checked."""
    ids = await redis.smembers(accounts_index())
    for account_id in ids:
        k = AccountKeys(account_id)
        w = {name: int(v) for name, v in (await redis.hgetall(k.wallet)).items()
             if not name.startswith(("credits_next", "free_month",  # and the guards':
                                     "alert", "auto", "limit"))}  # fmt: skip
        g = w.get
        cash, held, credits = g("cash", 0), g("held", 0), g("credits", 0)
        free = g("free_ai", 0) + g("free_cloud", 0)
        charges, from_free, from_credits = g("charges", 0), g("charges_free", 0), g(
            "charges_credits", 0)  # fmt: skip
        assert cash == (g("topups", 0) - g("refunds", 0) + g("adjustments", 0)
                        - (charges - from_free - from_credits)), (account_id, w)  # fmt: skip
        await _assert_cash_lots(redis, k, w)
        assert credits == g("granted", 0) - g("expired", 0) - from_credits, (account_id, w)
        assert free == g("free_granted", 0) - g("free_expired", 0) - from_free, (account_id, w)
        left = {gid: int(v) for gid, v in (await redis.hgetall(k.grants)).items()}
        assert sum(left.values()) == credits and all(v > 0 for v in left.values()), (w, left)
        assert len(await redis.zrange(k.grant_order, 0, -1)) == len(left)
        balance = cash + credits + free - held
        assert (g("topups", 0) + g("adjustments", 0) + g("granted", 0) + g("free_granted", 0)
                - g("refunds", 0)
                - g("expired", 0) - g("free_expired", 0) - charges) == balance + held, (
            account_id, w)  # fmt: skip

        ledger = [f for _, f in await redis.xrange(k.ledger)]
        for kind, total in (("topup", g("topups", 0)), ("refund", g("refunds", 0)),
                            ("credit", g("granted", 0)), ("credit_expired", g("expired", 0)),
                            ("free_quota", g("free_granted", 0)),
                            ("free_quota_expired", g("free_expired", 0)),
                            ("adjustment", g("adjustments", 0))):
            assert sum(int(f["a"]) for f in ledger if f["t"] == kind) == total, (account_id, kind)
        # The transactions stream lists the same moves (what age has not trimmed of it).
        moves = {(f["t"], f["r"], f["a"]) for f in ledger if f["t"] != "charge"}
        for _, f in await redis.xrange(k.transactions):
            assert (f["type"], f["order_id"], f["amount"]) in moves, (account_id, f)
        for f in ledger:  # a refund names the top-ups it returned, adding up to it
            if f["t"] == "refund" and "l" in f:
                assert sum(int(n) for _, n in orjson.loads(f["l"])) == int(f["a"]), f
        charged = [f for f in ledger if f["t"] == "charge"]
        assert sum(int(f["a"]) for f in charged) == charges, account_id
        ids_charged = [f["r"] for f in charged]
        assert len(ids_charged) == len(set(ids_charged)), "a request was charged twice"
        split = [0, 0, 0]
        for f in charged:  # each charge is drawn from its sources exactly
            parts = [int(n) for n in f["s"].split(",")]
            assert sum(parts) == int(f["a"]), f
            drawn = [int(p.rpartition(":")[2]) for p in f.get("g", "").split(";") if p]
            assert sum(drawn) == parts[1], f
            split = [a + b for a, b in zip(split, parts, strict=True)]
        assert split[0] == from_free and split[1] == from_credits, (account_id, split, w)

        amounts = {rid: int(v) for rid, v in (await redis.hgetall(k.hold_amounts)).items()}
        assert sum(amounts.values()) == held, (account_id, held, amounts)
        assert set(await redis.zrange(k.holds, 0, -1)) == set(amounts)
    return len(ids)


async def _assert_cash_lots(redis: Any, k: AccountKeys, w: dict[str, int]) -> None:
    """The cash lots (docs/wallet.md) hold ``lot_cash`` between them, and never less than the
    cash (what they hold beyond it was spent since the last money move)."""
    if "lot_cash" not in w:
        return  # no money move since lots were made
    lots = {lot: v.split("|") for lot, v in (await redis.hgetall(k.cash_lots)).items()}
    assert all(int(n) > 0 and r in ("0", "1") for n, r in lots.values()), lots
    assert sum(int(n) for n, _ in lots.values()) == w["lot_cash"] >= max(w.get("cash", 0), 0), (
        lots, w)
    assert set(await redis.zrange(k.cash_lot_order, 0, -1)) == set(lots)


async def request_status(redis: Any, account_id: str, request_id: str) -> str | None:
    """A request's status as stored: "pending", "released" (a tombstone), or its ledger entry's
    outcome ("settled", "failed", ...) once settled; None when Redis has nothing of it."""
    k = AccountKeys(account_id)
    record = await redis.hgetall(k.request(request_id))
    if "e" in record:
        ((_, fields),) = await redis.xrange(k.ledger, record["e"], record["e"])
        return str(fields["y"].split("|", 1)[0])
    return record.get("status")


async def charge_statuses(redis: Any, account_id: str) -> list[str]:
    """The outcome of every request in the account's ledger, sorted."""
    ledger = await redis.xrange(AccountKeys(account_id).ledger)
    return sorted(f["y"].split("|", 1)[0] for _, f in ledger if f["t"] == "charge")
