"""The contract's ledger identity, checked from Redis after every test that touched money."""

from __future__ import annotations

from typing import Any

from gateway.store.keys import AccountKeys, accounts_index


async def assert_ledger_identity(redis: Any) -> int:
    """For every account: totals agree with the ledger (where each request appears once and
    each charge's split adds up to it; the transactions stream lists its money moves), and
    top-ups - refunds - charges == balance + holds outstanding. Returns accounts checked."""
    ids = await redis.smembers(accounts_index())
    for account_id in ids:
        k = AccountKeys(account_id)
        w = {name: int(v) for name, v in (await redis.hgetall(k.wallet)).items()}
        cash, held = w.get("cash", 0), w.get("held", 0)
        topups, refunds, charges = w.get("topups", 0), w.get("refunds", 0), w.get("charges", 0)
        balance = cash - held
        assert topups - refunds - charges == balance + held, (account_id, w)

        ledger = [f for _, f in await redis.xrange(k.ledger)]
        for kind, total in (("topup", topups), ("refund", refunds)):
            assert sum(int(f["a"]) for f in ledger if f["t"] == kind) == total, (account_id, kind)
        # The transactions stream lists the same moves (what age has not trimmed of it).
        moves = {(f["t"], f["r"], f["a"]) for f in ledger if f["t"] != "charge"}
        for _, f in await redis.xrange(k.transactions):
            assert (f["type"], f["order_id"], f["amount"]) in moves, (account_id, f)
        charged = [f for f in ledger if f["t"] == "charge"]
        assert sum(int(f["a"]) for f in charged) == charges, account_id
        ids_charged = [f["r"] for f in charged]
        assert len(ids_charged) == len(set(ids_charged)), "a request was charged twice"
        for f in charged:  # each charge is drawn from its sources exactly
            assert sum(int(n) for n in f["s"].split(",")) == int(f["a"]), f

        amounts = {rid: int(v) for rid, v in (await redis.hgetall(k.hold_amounts)).items()}
        assert sum(amounts.values()) == held, (account_id, held, amounts)
        assert set(await redis.zrange(k.holds, 0, -1)) == set(amounts)
    return len(ids)


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
