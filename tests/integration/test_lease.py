"""One process at a time holds a lease; a dead holder's lease passes on when it expires."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.store.lease import Lease

pytestmark = pytest.mark.redis_cluster_too


async def test_one_holder_at_a_time_and_the_next_after_expiry(redis: Any) -> None:
    first, second = Lease(redis, "tg:test:lease", 300), Lease(redis, "tg:test:lease", 300)
    assert await first.hold() and not await second.hold()
    assert await first.hold()  # renewed by its holder
    await asyncio.sleep(0.45)  # the holder died: no renewal
    assert await second.hold() and not await first.hold()
    await second.release()
    assert await first.hold()
    await first.release()
    assert await redis.get("tg:test:lease") is None
