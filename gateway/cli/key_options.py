"""The options of ``tollgate keys create`` and ``tollgate keys update`` (a key's settings, as
the admin API takes them: gateway/edge/key_fields.py), and the body they make."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

# Options that "none" clears (null: any model, any address, no cap, never expires).
KEY_CLEARABLE = ("models", "allowed_ips", "monthly_spend_limit", "expires_at")


def key_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The settings a key is made with and changed by."""
    for option in reversed((
        click.option("--name", default=None),
        click.option("--role", type=click.Choice(["owner", "member", "viewer"]), default=None,
                     help="owner: also manages its account (/v1/account); viewer: reads only "
                     "(wallet, usage), calls no model; default member"),
        click.option("--rpm", type=click.IntRange(0), default=None, help="0: none"),
        click.option("--tpm", type=click.IntRange(0), default=None, help="0: none"),
        click.option("--models", default=None, help="comma-separated model names or globs it "
                     "may use ('none': any)"),
        click.option("--allowed-ips", default=None, help="comma-separated CIDRs (IPv4, IPv6) it "
                     "may be used from ('none': any)"),
        click.option("--monthly-spend-limit", default=None, help="USD it may spend a calendar "
                     "month (UTC), e.g. 50.00 ('none': no cap)"),
        click.option("--expires-at", default=None, help="RFC 3339, e.g. 2027-01-31T00:00:00Z "
                     "('none': never)"),
    )):  # fmt: skip
        func = option(func)
    return func


def key_body(fields: dict[str, Any]) -> dict[str, Any]:
    """The admin API's body for the key options given: lists split at commas, "none" (and a
    limit of 0) sent as null."""
    body: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if (name in KEY_CLEARABLE and value == "none") or (name in ("rpm", "tpm") and value == 0):
            body[name] = None
        elif name in ("models", "allowed_ips"):
            body[name] = [item.strip() for item in value.split(",") if item.strip()]
        else:
            body[name] = value
    return body
