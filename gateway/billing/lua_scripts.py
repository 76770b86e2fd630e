"""Loads the Lua scripts in ``gateway/billing/lua`` as redis-py Script objects.

Each script is the shared ``_prelude.lua`` followed by the script's own file. redis-py's Script
runs by SHA and reloads itself on NOSCRIPT, so a restarted or failed-over Redis needs nothing.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Protocol

from redis.exceptions import RedisClusterException, RedisError

from gateway.store.redis_errors import classify

SCRIPT_NAMES = (
    "admit_v5",
    "settle_v8",
    "money_move_v6",
    "sweep_v3",
    "voucher_redeem_v2",
    "renew_v2",
    "free_renew_v1",
    "relay_append_v1",
    "relay_mark_v1",
    "relay_ids_v1",
    "auto_topup_failed_v1",
)


def script_source(name: str) -> str:
    folder = resources.files("gateway.billing") / "lua"
    prelude = (folder / "_prelude.lua").read_text(encoding="utf-8")
    return prelude + "\n" + (folder / f"{name}.lua").read_text(encoding="utf-8")


def all_sources() -> dict[str, str]:
    return {name: script_source(name) for name in SCRIPT_NAMES}


class ScriptCaller(Protocol):
    """Runs a named script; raises ``StoreUnavailable`` or ``StoreRefused`` (store.redis_errors)."""

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any: ...


class RedisPyScripts:
    """Scripts through redis-py (any deployment, Redis Cluster included)."""

    def __init__(self, redis: Any) -> None:
        self._scripts = {name: redis.register_script(src) for name, src in all_sources().items()}

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._scripts[name](keys=keys, args=args)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise classify(exc) from exc
