"""Releases holds left behind by gateway processes that died mid-request, and keeps the
holds of live requests from expiring.

Every admission already sweeps its own account, and so does every wallet read; this task covers
accounts that see no traffic. One process at a time does it (a lease in Redis), not every
worker of every host; the sweep script is atomic per account anyway, so should two processes
reap at once, each expired hold is still released exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from gateway.billing.wallet import Wallet
from gateway.store.keys import accounts_index, reaper_lease
from gateway.store.lease import Lease
from gateway.store.redis_errors import raise_if_cancelling

log = logging.getLogger(__name__)
BATCH = 200


async def reap_once(redis: Any, wallet: Wallet) -> int:
    released = 0
    cursor: int | str = 0
    while True:
        cursor, ids = await redis.sscan(accounts_index(), cursor=cursor, count=BATCH)
        released += await wallet.sweep_many(list(ids))
        if int(cursor) == 0:
            return released


async def reap_forever(redis: Any, wallet: Wallet, interval: float) -> None:
    lease = Lease(redis, reaper_lease(), int(interval * 3000))
    while True:
        await asyncio.sleep(interval)
        try:
            if not await lease.hold():
                continue  # another process reaps this round
            released = await reap_once(redis, wallet)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis away: try again next round
            raise_if_cancelling(exc)
            log.warning("hold reaper could not run: %s", exc)
            continue
        finally:
            raise_if_cancelling()  # also after a lease check that swallowed it
        if released:
            log.warning("released %d expired hold(s) of requests whose gateway stopped", released)


class Renews(Protocol):
    async def renew_leases(self) -> int: ...


async def renew_forever(proxy: Renews, interval: float) -> None:
    """Keep the holds of this process's live requests from expiring."""
    while True:
        await asyncio.sleep(interval)
        try:
            await proxy.renew_leases()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis away: the next round tries again
            raise_if_cancelling(exc)
            log.warning("could not renew holds of requests in flight: %s", exc)
        raise_if_cancelling()
