"""An account's guards: balance alerts, the auto top-up rule, the monthly limit (docs/guards.md).

The Lua calls that admit and settle requests apply them, reading them from the wallet hash
with the fields they read anyway; this module parses them from the admin API (pure) and writes
them there (:class:`GuardStore`). Amounts are integer nanodollars.

    alerts        "5000000000,1000000000"   thresholds, highest first
    auto          "threshold,amount,target,max a day,pending ms"
    limit         "500000000000"            the monthly limit (absent: none)
    limit_action  "pause" | "notify"
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gateway import errors
from gateway.store.keys import AccountKeys
from gateway.store.replies import as_text
from pricing import format_usd, parse_usd

USD = 10**9
ACTIONS = ("pause", "notify")
FIELDS = ("alert_threshold", "alert_thresholds", "auto_topup", "monthly_limit", "limit_action")
WALLET_FIELDS = ("alerts", "auto", "limit", "limit_action")
MOST_ALERTS = 10
PENDING_MS = 3600_000  # how long an auto top-up may stay unanswered before another is asked


@dataclass(frozen=True, slots=True)
class AutoTopUp:
    """Below ``threshold``, ask for ``amount``, or for what brings the total to ``target``."""

    threshold: int
    amount: int = 0
    target: int = 0
    max_per_day: int = 3

    def to_json(self) -> dict[str, object]:
        return {
            "threshold": format_usd(self.threshold),
            "amount": format_usd(self.amount) if self.amount else None,
            "target": format_usd(self.target) if self.target else None,
            "max_per_day": self.max_per_day,
        }


@dataclass(frozen=True, slots=True)
class Guards:
    alert_thresholds: tuple[int, ...] = ()
    auto_topup: AutoTopUp | None = None
    monthly_limit: int | None = None
    limit_action: str = "pause"

    def to_json(self) -> dict[str, object]:
        thresholds = [format_usd(t) for t in self.alert_thresholds]
        return {
            "alert_threshold": thresholds[0] if thresholds else None,
            "alert_thresholds": thresholds,
            "auto_topup": self.auto_topup.to_json() if self.auto_topup else None,
            "monthly_limit": format_usd(self.monthly_limit)
            if self.monthly_limit is not None else None,
            "limit_action": self.limit_action,
        }  # fmt: skip

    def wallet_fields(self) -> dict[str, str | None]:
        """The wallet hash's guard fields (None: delete the field)."""
        auto = self.auto_topup
        return {
            "alerts": ",".join(str(t) for t in self.alert_thresholds) or None,
            "auto": f"{auto.threshold},{auto.amount},{auto.target},{auto.max_per_day},"
            f"{PENDING_MS}" if auto else None,
            "limit": str(self.monthly_limit) if self.monthly_limit is not None else None,
            "limit_action": self.limit_action,
        }  # fmt: skip


def from_wallet(values: list[Any]) -> Guards:
    """Guards from the wallet hash's ``WALLET_FIELDS``, in that order."""
    alerts, auto, limit, action = (as_text(v) if v is not None else None for v in values)
    rule = None
    if auto:
        threshold, amount, target, most, _ = (int(n) for n in auto.split(","))
        rule = AutoTopUp(threshold, amount, target, most)
    return Guards(
        alert_thresholds=tuple(int(t) for t in alerts.split(",")) if alerts else (),
        auto_topup=rule,
        monthly_limit=int(limit) if limit else None,
        limit_action=action or "pause",
    )


def patched(current: Guards, body: dict[str, Any]) -> Guards:
    """``current`` with the guard fields of an admin (or owner) PATCH body applied."""
    changes: dict[str, Any] = {}
    if "alert_thresholds" in body:
        changes["alert_thresholds"] = _thresholds(body["alert_thresholds"], "alert_thresholds")
    elif "alert_threshold" in body:
        one = body["alert_threshold"]
        changes["alert_thresholds"] = () if one is None else _thresholds([one], "alert_threshold")
    if "auto_topup" in body:
        changes["auto_topup"] = _auto(body["auto_topup"])
    if "monthly_limit" in body:
        value = body["monthly_limit"]
        changes["monthly_limit"] = None if value is None else _usd(value, "monthly_limit")
    if "limit_action" in body:
        if body["limit_action"] not in ACTIONS:
            raise errors.InvalidRequest("'limit_action' must be 'pause' or 'notify'.",
                                        param="limit_action")  # fmt: skip
        changes["limit_action"] = body["limit_action"]
    return replace(current, **changes)


def _usd(value: object, name: str, *, zero: bool = False) -> int:
    if not isinstance(value, str):  # money in JSON is a decimal string, never a number
        raise errors.InvalidRequest(f"'{name}' must be a USD amount as a decimal string "
                                    '("5.00").', param=name)  # fmt: skip
    try:
        amount = parse_usd(value, field=name)
    except ValueError as exc:
        raise errors.InvalidRequest(str(exc), param=name) from None
    if amount < 0 or (amount == 0 and not zero) or amount >= 2**53:
        raise errors.InvalidRequest(f"'{name}' must be a positive USD amount.", param=name)
    return amount


def _thresholds(value: object, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MOST_ALERTS:
        raise errors.InvalidRequest(
            f"'{name}' must be a list of at most {MOST_ALERTS} USD amounts.", param=name
        )
    return tuple(sorted({_usd(v, name) for v in value}, reverse=True))


def _auto(value: object) -> AutoTopUp | None:
    if value is None:
        return None
    name = "auto_topup"
    if not isinstance(value, dict) or set(value) - {"threshold", "amount", "target",
                                                    "max_per_day"}:  # fmt: skip
        raise errors.InvalidRequest(
            "'auto_topup' must be null or {threshold, amount | target, max_per_day}.", param=name
        )
    threshold = _usd(value.get("threshold"), f"{name}.threshold")
    amount = _usd(value["amount"], f"{name}.amount") if value.get("amount") is not None else 0
    target = _usd(value["target"], f"{name}.target") if value.get("target") is not None else 0
    if bool(amount) == bool(target):
        raise errors.InvalidRequest("'auto_topup' takes either an 'amount' or a 'target'.",
                                    param=name)  # fmt: skip
    if target and target <= threshold:
        raise errors.InvalidRequest("'auto_topup.target' must be above its threshold.",
                                    param=f"{name}.target")  # fmt: skip
    most = value.get("max_per_day", 3)
    if type(most) is not int or not 1 <= most <= 100:
        raise errors.InvalidRequest("'auto_topup.max_per_day' must be an integer from 1 to "
                                    "100.", param=f"{name}.max_per_day")  # fmt: skip
    return AutoTopUp(threshold, amount, target, most)


class GuardStore:
    """Reads and writes an account's guards in its wallet hash."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def get(self, account_id: str) -> Guards:
        return from_wallet(await self._redis.hmget(AccountKeys(account_id).wallet, WALLET_FIELDS))

    async def set(self, account_id: str, guards: Guards) -> None:
        key = AccountKeys(account_id).wallet
        fields = guards.wallet_fields()
        keep = {name: value for name, value in fields.items() if value is not None}
        drop = [name for name, value in fields.items() if value is None]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=keep)
            if drop:
                pipe.hdel(key, *drop)
            await pipe.execute()
