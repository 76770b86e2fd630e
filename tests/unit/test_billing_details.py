"""An account's billing details and display unit as the admin API reads them (issue 18)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import errors
from gateway.billing.billing_details import BillingDetails
from gateway.edge.admin_fields import profile_fields


def test_details_become_profile_fields() -> None:
    body = {"billing": {"name": "  Acme Ltd ", "address": "1 Main St\r\n  Springfield \n",
                        "tax_id": "GB1", "email": "ap@acme.example"}, "credits_per_usd": 100}
    assert profile_fields(body) == {
        "billing_name": "Acme Ltd", "billing_address": "1 Main St\nSpringfield",
        "billing_tax_id": "GB1", "billing_email": "ap@acme.example", "credits_per_usd": "100",
    }  # fmt: skip
    assert profile_fields({"name": "acme"}) == {}  # nothing said: nothing changes


def test_null_or_empty_clears_and_what_is_left_out_stays() -> None:
    assert profile_fields({"billing": {"tax_id": None, "email": " "}}) == {
        "billing_tax_id": None, "billing_email": None}  # fmt: skip
    assert profile_fields({"billing": None, "credits_per_usd": None}) == {
        "billing_name": None, "billing_address": None, "billing_tax_id": None,
        "billing_email": None, "credits_per_usd": None}  # fmt: skip


@pytest.mark.parametrize(("body", "param"), [
    ({"billing": "Acme"}, "billing"),
    ({"billing": {"vat": "1"}}, "billing.vat"),
    ({"billing": {"name": 7}}, "billing.name"),
    ({"billing": {"name": "Acme\nLtd"}}, "billing.name"),
    ({"billing": {"name": "x" * 201}}, "billing.name"),
    ({"billing": {"tax_id": "GB\x001"}}, "billing.tax_id"),
    ({"billing": {"address": "\n".join("line" for _ in range(11))}}, "billing.address"),
    ({"billing": {"address": "1 Main St\x1b[31m"}}, "billing.address"),
    ({"billing": {"email": "not an email"}}, "billing.email"),
    ({"billing": {"email": "ap@localhost"}}, "billing.email"),
    ({"credits_per_usd": 0}, "credits_per_usd"),
    ({"credits_per_usd": 2.5}, "credits_per_usd"),
    ({"credits_per_usd": "100"}, "credits_per_usd"),
    ({"credits_per_usd": True}, "credits_per_usd"),
    ({"credits_per_usd": 10**6 + 1}, "credits_per_usd"),
])  # fmt: skip
def test_bad_details_are_refused_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(errors.InvalidRequest) as refused:
        profile_fields(body)
    assert refused.value.param == param


def test_details_read_back_from_a_profile() -> None:
    details = BillingDetails.from_fields({"billing_name": "Acme", "billing_tax_id": "",
                                          "name": "not this"})  # fmt: skip
    assert details == BillingDetails(name="Acme") and details
    assert details.to_json() == {"name": "Acme", "address": None, "tax_id": None, "email": None}
    assert not BillingDetails.from_fields({})
