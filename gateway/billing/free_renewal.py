"""The monthly renewal of the plans' free quota (docs/wallet.md, "Renewal of the free quota").

On a plan whose quota renews monthly, at the start of each calendar month (UTC, Redis's clock)
an account's free quota of each category the plan gives is reset to the plan's amount: what was
left leaves through one ``free_quota_expired`` ledger entry, the new month's comes in through
one ``free_quota`` entry, both in one ``free_renew_v1`` call that is idempotent per (account,
month, category). The wallet's ``free_month`` says which month its quota belongs to; a wallet
without one has the quota granted when the account was made, in the month of its creation.

One process at a time walks the accounts (a lease in Redis), when it starts and whenever the
month changes; it looks every ``free_renewal_interval`` seconds. Two walks at once, a walk cut
short by a crash and started again, or a replay still renew each account once a month. Until
the walk reaches an account, its requests still draw on last month's quota (a minute or so
after midnight): the quota is renewed, not topped up, so nothing is lost or given twice.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway import errors
from gateway.billing.accounts import Account, Directory
from gateway.billing.lua_scripts import ScriptCaller
from gateway.billing.plans import Plan
from gateway.billing.wallet import ORDER_RETENTION
from gateway.store.keys import AccountKeys, accounts_index, free_renewal_lease
from gateway.store.lease import Lease
from gateway.store.redis_errors import raise_if_cancelling

log = logging.getLogger(__name__)
BATCH = 200  # accounts read from the index, and renewed concurrently, at a time
MONTH = re.compile(r"\d{4}-\d{2}")
BEFORE_ANY_MONTH = "0000-00"  # the quota month of an account whose creation is unknown

Clock = Callable[[], int]  # unix ms


def month_of(ms: int) -> str:
    """``YYYY-MM`` (UTC) of a time in ms since the epoch."""
    return time.strftime("%Y-%m", time.gmtime(ms // 1000))


def renewal_order_id(month: str, category: str) -> str:
    """The order id of one renewal (its key makes it happen once; the ledger entries' ``r``)."""
    return f"free-renew:{month}:{category}"


def renewed_quota(plan: Plan) -> list[tuple[str, int]]:
    """(category, amount) the plan gives again each month; empty when it never renews."""
    if plan.free_quota_renews != "monthly":
        return []
    quota = (("ai", plan.free_quota_ai), ("cloud", plan.free_quota_cloud))
    return [(category, amount) for category, amount in quota if amount > 0]


@dataclass(frozen=True, slots=True)
class Renewal:
    """What one account's renewal did: ``status`` "renewed", "current" (its quota is of that
    month already), "early" (that month has not begun by the script's clock) or "refused"
    (the quota would take the wallet past 2^53 - 1 units)."""

    status: str
    expired: int = 0
    granted: int = 0


class FreeQuotaRenewer:
    def __init__(
        self,
        redis: Any,
        scripts: ScriptCaller,
        directory: Directory,
        plans: Mapping[str, Plan],
        *,
        clock: Clock | None = None,
        on_ledger: Callable[[str], None] | None = None,
        ledger_retention: int = 90 * 86400,
    ) -> None:
        """``clock`` (unix ms) decides the month; None: Redis's clock, as the scripts use it.
        ``on_ledger`` hears of every account whose ledger got entries (the feed's relay)."""
        self._redis = redis
        self._scripts = scripts
        self._directory = directory
        self._plans = plans
        self.clock = clock  # tests drive the month through it
        self._on_ledger = on_ledger or (lambda _account: None)
        self._ledger_retention = ledger_retention

    async def now_ms(self) -> int:
        if self.clock is not None:
            return self.clock()
        seconds, micros = await self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def renew(self, account: Account, month: str) -> Renewal | None:
        """Renew ``account``'s free quota into ``month``; None when its plan renews nothing
        (no quota, "once", an unknown plan) or it is closed."""
        plan = self._plans.get(account.plan or "default")
        quota = renewed_quota(plan) if plan is not None and account.status != "closed" else []
        if plan is None or not quota:
            return None
        k = AccountKeys(account.id)
        orders = [renewal_order_id(month, category) for category, _ in quota]
        created = account.created_at[:7]
        args: list[Any] = [
            month, created if MONTH.fullmatch(created) else BEFORE_ANY_MONTH,
            f"{plan.name} plan", self._ledger_retention, ORDER_RETENTION,
            self.clock() if self.clock is not None else 0,
        ]  # fmt: skip
        for (category, amount), order in zip(quota, orders, strict=True):
            args += [category, amount, order]
        keys = [k.wallet, k.ledger, *(k.order(order) for order in orders)]
        r = (await self._scripts.call("free_renew_v1", keys, args)).split()
        status = int(r[0])
        if status == 1:
            self._on_ledger(account.id)
            return Renewal("renewed", expired=int(r[1]), granted=int(r[2]))
        if status == -2:
            log.warning("not renewing the free quota of %s: it would take the wallet past "
                        "its maximum", account.id)  # fmt: skip
        return Renewal({0: "current", -1: "early"}.get(status, "refused"))

    async def renew_id(self, account_id: str, month: str) -> Renewal | None:
        try:
            account = await self._directory.get_account(account_id)
        except errors.NotFound:  # in the index, but its profile is gone
            return None
        return await self.renew(account, month)

    async def renew_all(
        self, month: str, keep_going: Callable[[], Awaitable[bool]] | None = None
    ) -> tuple[int, bool]:
        """Renew every account due into ``month``; ``keep_going`` is asked between batches
        (this process still holds the lease). Returns (accounts renewed, walk complete)."""
        renewed, complete = 0, True
        cursor: int | str = 0
        while True:
            cursor, ids = await self._redis.sscan(accounts_index(), cursor=cursor, count=BATCH)
            done = await asyncio.gather(*(self.renew_id(a, month) for a in ids),
                                        return_exceptions=True)  # fmt: skip
            renewed += sum(1 for r in done if isinstance(r, Renewal) and r.status == "renewed")
            failed = [r for r in done if isinstance(r, BaseException)]
            # "early": the scripts' clock is behind the one that named the month; next round
            complete = complete and not failed and all(
                not isinstance(r, Renewal) or r.status != "early" for r in done)  # fmt: skip
            if failed:
                log.warning("could not renew the free quota of %d account(s): %s", len(failed),
                            failed[0])  # fmt: skip
            if int(cursor) == 0:
                return renewed, complete
            if keep_going is not None and not await keep_going():
                return renewed, False


async def renew_free_quota_forever(renewer: FreeQuotaRenewer, redis: Any, interval: float) -> None:
    """Walk the accounts when this process takes the lease and whenever the month changes."""
    lease = Lease(redis, free_renewal_lease(), int(interval * 3000))
    walked = ""  # the month of this process's last complete walk
    while True:
        try:
            if await lease.hold():
                month = month_of(await renewer.now_ms())
                if month != walked:
                    renewed, complete = await renewer.renew_all(month, keep_going=lease.hold)
                    walked = month if complete else walked
                    if renewed:
                        log.info("renewed the free quota of %d account(s) for %s", renewed,
                                 month)  # fmt: skip
            else:
                walked = ""  # another process walks; should it stop, walk again on taking over
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis away: the next round tries again
            raise_if_cancelling(exc)
            log.warning("free quota renewal could not run: %s", exc)
        finally:
            raise_if_cancelling()  # also after a lease check that swallowed it
        await asyncio.sleep(interval)
