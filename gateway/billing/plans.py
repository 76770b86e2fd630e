"""Plans: what an account may do with its wallet (pure).

The gateway config's ``plans:`` is merged field by field over the built-in ones; new names are
allowed. A plan says whether its accounts may top up and within which bounds, how much free
quota (AI and Cloud) it grants, and ``hold_max``: the most a request that sets no output limit
(no ``max_tokens``) is held for (``gateway.billing.holds``; none by default). ``default`` is the
plan of accounts made without one (and of every account made before plans existed): it may top
up any amount, grants no quota and caps no hold. ``monthly_limit`` (default 500.00 USD; null:
none) and ``limit_action`` (``pause`` or ``notify``) are what a new account of the plan starts
with (docs/guards.md).

    plans:
      free: {can_top_up: false, free_quota: {ai: "1.00", cloud: "0.00"}, free_quota_renews: monthly}
      pro:  {can_top_up: true, topup_min: "10.00", topup_max: "1000.00"}
      trial: {hold_max: "0.05"}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from pricing import format_usd, parse_usd

USD = 10**9
RENEWALS = ("monthly", "once")
LIMIT_ACTIONS = ("pause", "notify")


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    can_top_up: bool = True
    topup_min: int = 0  # nanodollars; 0: no bound
    topup_max: int = 0
    free_quota_ai: int = 0
    free_quota_cloud: int = 0
    free_quota_renews: str = "monthly"
    hold_max: int = 0  # nanodollars; 0: no cap on a request's hold
    # What a new account of the plan starts with (docs/guards.md); the account may change them.
    monthly_limit: int | None = 500 * USD  # None: none
    limit_action: str = "pause"

    def check_topup(self, amount: int) -> str | None:
        """Why a top-up of ``amount`` is refused, or None."""
        too_low = self.topup_min and amount < self.topup_min
        if too_low or (self.topup_max and amount > self.topup_max):
            low = format_usd(self.topup_min) if self.topup_min else "0"
            high = format_usd(self.topup_max) if self.topup_max else "any amount"
            return f"A top-up on the {self.name!r} plan must be from {low} to {high} USD."
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name, "can_top_up": self.can_top_up,
            "topup_min": format_usd(self.topup_min) if self.topup_min else None,
            "topup_max": format_usd(self.topup_max) if self.topup_max else None,
            "free_quota": {"ai": format_usd(self.free_quota_ai),
                           "cloud": format_usd(self.free_quota_cloud)},
            "free_quota_renews": self.free_quota_renews,
            "hold_max": format_usd(self.hold_max) if self.hold_max else None,
            "monthly_limit": format_usd(self.monthly_limit)
            if self.monthly_limit is not None else None,
            "limit_action": self.limit_action,
        }  # fmt: skip


BUILT_IN: dict[str, Plan] = {
    "default": Plan("default"),
    "free": Plan("free", can_top_up=False, free_quota_ai=1 * USD),
    "pro": Plan("pro", topup_min=10 * USD, topup_max=1000 * USD),
    "max": Plan("max", topup_min=10 * USD, topup_max=10_000 * USD),
}


class PlanError(ValueError):
    """``field`` (e.g. ``plans.pro.topup_min``) is wrong: ``problem``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def parse_plans(raw: object) -> dict[str, Plan]:
    """The plans in force: the built-in ones, with the config's fields merged over them."""
    plans = dict(BUILT_IN)
    if raw is None:
        return plans
    if not isinstance(raw, Mapping):
        raise PlanError("plans", "must be a mapping of plan names to their fields")
    for name, body in raw.items():
        if not isinstance(name, str) or not name or len(name) > 64:
            raise PlanError("plans", f"{name!r} is not a plan name")
        if not isinstance(body, Mapping):
            raise PlanError(f"plans.{name}", "must be a mapping of fields")
        plans[name] = _merge(plans.get(name, Plan(name)), name, body)
    return plans


def _merge(plan: Plan, name: str, body: Mapping[Any, Any]) -> Plan:
    changes: dict[str, Any] = {}
    for key, value in body.items():
        changes.update(_field(str(key), value, f"plans.{name}.{key}"))
    merged = replace(plan, **changes)
    if merged.topup_min and merged.topup_max and merged.topup_min > merged.topup_max:
        raise PlanError(f"plans.{name}.topup_min", "must not exceed topup_max")
    return merged


CHOICES = {"free_quota_renews": RENEWALS, "limit_action": LIMIT_ACTIONS}


def _field(key: str, value: object, where: str) -> dict[str, Any]:
    """The Plan fields that one config field ``key`` sets."""
    if key == "can_top_up":
        if not isinstance(value, bool):
            raise PlanError(where, "must be true or false")
        return {key: value}
    if key in ("topup_min", "topup_max"):
        return {key: _usd(where, value)}
    if key == "hold_max":  # null: no cap (over a plan that had one)
        return {key: 0 if value is None else _usd(where, value, positive=True)}
    if key == "monthly_limit":  # null: none
        return {key: None if value is None else _usd(where, value, positive=True)}
    if key in CHOICES:
        if value not in CHOICES[key]:
            raise PlanError(where, f"must be one of {', '.join(CHOICES[key])}")
        return {key: value}
    if key == "free_quota":
        if not isinstance(value, Mapping) or set(value) - {"ai", "cloud"}:
            raise PlanError(where, 'must be a mapping with "ai" and/or "cloud" amounts')
        return {f"free_quota_{c}": _usd(f"{where}.{c}", value[c]) for c in ("ai", "cloud")
                if c in value}  # fmt: skip
    known = {f.name for f in fields(Plan)} - {"name", "free_quota_ai", "free_quota_cloud"}
    raise PlanError(where, f"unknown field; expected one of "
                    f"{', '.join(sorted(known | {'free_quota'}))}")


def _usd(where: str, value: object, *, positive: bool = False) -> int:
    """An amount in USD, written as a string ("10.00") so it is exact; ``positive``: above 0."""
    if not isinstance(value, str):
        raise PlanError(where, 'must be a USD amount as a string, e.g. "10.00"')
    try:
        amount = parse_usd(value, field=where)
    except ValueError as exc:
        raise PlanError(where, str(exc)) from None
    if amount < 0:
        raise PlanError(where, "must not be negative")
    if positive and amount == 0:
        raise PlanError(where, "must be above 0 (null, or leaving it out: no cap)")
    return amount
