"""Who an account's receipts are made out to: its billing details (name, address, tax id, email).

They live in the account's profile hash under fixed field names (``PROFILE_FIELDS``) because
the top-up script (``lua/money_move_v6.lua``) copies them from there into the receipt in the same
call as the top-up: a receipt shows the details as they were when it was issued, and editing
them later changes only the receipts still to come. An empty or absent field is unset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# The API's name of each detail -> its field in the profile hash (and in a stored receipt).
PROFILE_FIELDS = {
    "name": "billing_name",
    "address": "billing_address",
    "tax_id": "billing_tax_id",
    "email": "billing_email",
}
MAX_LENGTHS = {"name": 200, "address": 1000, "tax_id": 64, "email": 254}
MAX_ADDRESS_LINES = 10


@dataclass(frozen=True, slots=True)
class BillingDetails:
    name: str = ""
    address: str = ""  # lines separated by "\n"
    tax_id: str = ""
    email: str = ""

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> BillingDetails:
        """From a profile hash or a stored receipt (``billing_name``, ...)."""
        return cls(**{name: fields.get(field) or "" for name, field in PROFILE_FIELDS.items()})

    def to_json(self) -> dict[str, str | None]:
        """Each detail, null when unset."""
        return {name: getattr(self, name) or None for name in PROFILE_FIELDS}

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in PROFILE_FIELDS)


def detail_problem(name: str, value: str) -> str | None:
    """Why ``value`` cannot be the detail ``name`` (one phrase), or None when it can. The
    address may have several lines; the other details are one printable line."""
    most = MAX_LENGTHS[name]
    if len(value) > most:
        return f"must be at most {most} characters"
    lines = value.split("\n")
    if name == "address":
        if len(lines) > MAX_ADDRESS_LINES:
            return f"must be at most {MAX_ADDRESS_LINES} lines"
    elif len(lines) > 1:
        return "must be one line"
    if not all(line.isprintable() for line in lines):
        return "must not contain control characters"
    if name == "email":
        local, at, domain = value.rpartition("@")
        if not at or not local or "." not in domain or any(c.isspace() for c in value):
            return "must be an email address"
    return None
