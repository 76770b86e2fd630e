"""Reading an API key's settings from a request body, for the admin API and the owner's API
alike: each value is returned as :class:`gateway.billing.accounts.ApiKey` holds it, or
``InvalidRequest`` names the field.

    project              a name ("default"); set when the key is made, never changed
    name                 a name ("default")
    role                 "owner" | "member" (default) | "viewer"
    rpm, tpm             a positive integer, or null: none
    models               model names or globs, or null: any model
    allowed_ips          CIDRs (IPv4, IPv6; a bare address is a /32 or /128), or [] / null: any
    monthly_spend_limit  USD as a decimal string ("50.00"), or null: none
    expires_at           an RFC 3339 time in the future, or null: never
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway import errors
from gateway.billing.accounts import KEY_SETTINGS, ROLES
from gateway.edge.admin_fields import expiry_field
from gateway.edge.client_ip import BadNetwork, Network, parse_networks
from gateway.edge.httpjson import limit_field, models_field, string_field
from pricing import parse_usd

MOST_USD = 2**53 - 1  # the most a Lua number holds exactly, in nanodollars


def role_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name, "member")
    if value not in ROLES:
        raise errors.InvalidRequest(f"'{name}' must be one of {', '.join(ROLES)}.", param=name)
    return str(value)


def allowed_ips_field(body: dict[str, Any], name: str) -> tuple[Network, ...]:
    value = body.get(name)
    if value is None:
        return ()
    try:
        return parse_networks(value, name)
    except BadNetwork as exc:
        raise errors.InvalidRequest(f"'{exc.where}' {exc.problem}.", param=name) from None


def spend_limit_field(body: dict[str, Any], name: str) -> int:
    """A monthly cap: a positive USD decimal string, in nanodollars; null/absent: none (0)."""
    value = body.get(name)
    if value is None:
        return 0
    problem = f"'{name}' must be a positive USD amount as a decimal string (\"50.00\"), or null."
    if not isinstance(value, str):
        raise errors.InvalidRequest(problem, param=name)
    try:
        amount = parse_usd(value, field=name)
    except ValueError:
        raise errors.InvalidRequest(problem, param=name) from None
    if not 0 < amount <= MOST_USD:
        raise errors.InvalidRequest(problem, param=name)
    return amount


def _name_field(body: dict[str, Any], name: str) -> str:
    return string_field(body, name, default="default")


READERS: dict[str, Callable[[dict[str, Any], str], Any]] = {
    "name": _name_field,
    "role": role_field,
    "rpm": limit_field,
    "tpm": limit_field,
    "models": models_field,
    "allowed_ips": allowed_ips_field,
    "monthly_spend_limit": spend_limit_field,
    "expires_at": expiry_field,
}


def key_settings(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """A new key's settings (every one; absent: its default, and ``project``), or a PATCH's
    changes (only those given). An unknown field is refused, so that a misspelt
    ``allowed_ips`` never makes a key that works from anywhere."""
    known = ("project", *KEY_SETTINGS) if creating else KEY_SETTINGS
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise errors.InvalidRequest(
            f"Unknown field {unknown[0]!r}; a key's fields are {', '.join(known)}"
            + ("." if creating else " (its project is set when it is made)."),
            param=unknown[0],
        )
    settings: dict[str, Any] = {}
    if creating:
        settings["project"] = string_field(body, "project", default="default")
    for name in KEY_SETTINGS:
        if creating or name in body:
            settings[name] = READERS[name](body, name)
    return settings
