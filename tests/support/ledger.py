"""The contract's ledger identity, checked from Redis after every test that touched money."""

from __future__ import annotations

from typing import Any

from gateway.store.keys import AccountKeys, accounts_index


async def assert_ledger_identity(redis: Any) -> int:
    """For every account: totals agree with the streams, and
    top-ups - refunds - charges == balance + holds outstanding. Returns accounts checked."""
    ids = await redis.smembers(accounts_index())
    for account_id in ids:
        k = AccountKeys(account_id)
        w = {name: int(v) for name, v in (await redis.hgetall(k.wallet)).items()}
        cash, held = w.get("cash", 0), w.get("held", 0)
        topups, refunds, charges = w.get("topups", 0), w.get("refunds", 0), w.get("charges", 0)
        balance = cash - held
        assert topups - refunds - charges == balance + held, (account_id, w)

        tx = await redis.xrange(k.transactions)
        assert sum(int(f["amount"]) for _, f in tx if f["type"] == "topup") == topups
        assert sum(int(f["amount"]) for _, f in tx if f["type"] == "refund") == refunds
        charged = await redis.xrange(k.charges)
        assert sum(int(f["amount"]) for _, f in charged) == charges, account_id
        ids_charged = [f["request_id"] for _, f in charged]
        assert len(ids_charged) == len(set(ids_charged)), "a request was charged twice"

        amounts = {rid: int(v) for rid, v in (await redis.hgetall(k.hold_amounts)).items()}
        assert sum(amounts.values()) == held, (account_id, held, amounts)
        assert set(await redis.zrange(k.holds, 0, -1)) == set(amounts)
    return len(ids)
