"""An account's saved means of payment, as the admin API sets them (pure).

``PATCH /admin/accounts/{id}`` with ``stripe_customer_id`` (``cus_...``) and
``stripe_payment_method`` (``pm_...``, a card saved for off-session use, e.g. by a Checkout
Session in setup mode) lets the ``stripe`` provider charge the account's automatic top-ups.
Both live in the account's profile hash; null clears one.
"""

from __future__ import annotations

import re
from typing import Any

from gateway import errors

SAVED_PAYMENT = ("stripe_customer_id", "stripe_payment_method")
_PATTERNS = {
    "stripe_customer_id": re.compile(r"cus_[A-Za-z0-9]{1,250}", re.ASCII),
    "stripe_payment_method": re.compile(r"(?:pm|card|src)_[A-Za-z0-9]{1,250}", re.ASCII),
}


def saved_payment_fields(body: dict[str, Any]) -> dict[str, str | None]:
    """The body's saved-payment fields, as profile hash fields (None: clear it)."""
    fields: dict[str, str | None] = {}
    for name in SAVED_PAYMENT:
        if name not in body:
            continue
        value = body[name]
        if value is not None and not (
            isinstance(value, str) and _PATTERNS[name].fullmatch(value)
        ):
            example = "cus_..." if name == "stripe_customer_id" else "pm_..."
            raise errors.InvalidRequest(f"'{name}' must be a Stripe id ({example}) or null.",
                                        param=name)  # fmt: skip
        fields[name] = value
    return fields

