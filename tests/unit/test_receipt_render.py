"""Receipts as a person reads them (issue 18): the JSON, the printable page and the PDF show the
same facts, the page escapes every value, and the PDF's text holds what a receipt must."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pypdf
import pytest

from gateway.billing.billing_details import BillingDetails
from gateway.billing.receipt_render import pdf_text, receipt_html, receipt_pdf
from gateway.billing.receipts import Issuer, Receipt, receipt_from
from gateway.settings import ConfigError, Settings, parse_settings

ISSUER = Issuer("Tollgate Example GmbH", "Hauptstrasse 1\n10115 Berlin", "DE123456789")
RECEIPT = Receipt(
    number=42, account="3f7c9a52-0000-4000-8000-000000000001", transaction_id="1801234567890-0",
    order_id="cs_test_a1B2c3", amount=12_345_000_000, ts_ms=1801234567890, note="by phone",
    billing=BillingDetails(name="Acme Ltd", address="1 Main Street\nSpringfield 12345",
                           tax_id="GB987654321", email="billing@acme.example"),
)  # fmt: skip


def pdf_words(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def test_the_json_names_the_receipt_and_its_parties() -> None:
    assert RECEIPT.to_json(ISSUER) == {
        "number": 42,
        "account": RECEIPT.account,
        "issued_at": "2027-01-29T14:56:07.890Z",
        "amount": "12.345",
        "currency": "USD",
        "transaction_id": "1801234567890-0",
        "order_id": "cs_test_a1B2c3",
        "note": "by phone",
        "billing": {"name": "Acme Ltd", "address": "1 Main Street\nSpringfield 12345",
                    "tax_id": "GB987654321", "email": "billing@acme.example"},
        "issuer": {"name": "Tollgate Example GmbH", "address": "Hauptstrasse 1\n10115 Berlin",
                   "tax_id": "DE123456789"},
    }  # fmt: skip
    bare = replace(RECEIPT, billing=BillingDetails()).to_json()
    assert bare["issuer"] is None
    assert bare["billing"] == {"name": None, "address": None, "tax_id": None, "email": None}


def test_a_stored_receipt_reads_back() -> None:
    stored = ('{"number":"42","transaction_id":"1801234567890-0","order_id":"cs_test_a1B2c3",'
              '"amount":"12345000000","ts_ms":"1801234567890","note":"by phone",'
              '"billing_name":"Acme Ltd","billing_address":"1 Main Street\\nSpringfield 12345",'
              '"billing_tax_id":"GB987654321","billing_email":"billing@acme.example"}')  # fmt: skip
    assert receipt_from(RECEIPT.account, stored) == RECEIPT
    unset = stored.replace('"Acme Ltd"', '""').replace('"GB987654321"', '""')
    assert receipt_from(RECEIPT.account, unset).billing.to_json()["name"] is None


def test_the_page_stands_alone_and_shows_every_fact() -> None:
    page = receipt_html(RECEIPT, ISSUER)
    assert page.startswith("<!doctype html>") and "<style>" in page and "@media print" in page
    for fact in ("Receipt", "42", "2027-01-29", RECEIPT.account, "Acme Ltd", "1 Main Street",
                 "Springfield 12345", "GB987654321", "billing@acme.example", "12.345 USD",
                 "cs_test_a1B2c3", "1801234567890-0", "Tollgate Example GmbH", "DE123456789",
                 "by phone"):  # fmt: skip
        assert fact in page, fact
    assert "<script" not in page and "src=" not in page and "http" not in page


def test_the_page_escapes_every_value() -> None:
    hostile = "<script>alert('x')</script>"
    receipt = replace(RECEIPT, order_id=hostile, note='"><img onerror=x>', billing=BillingDetails(
        name=hostile, address=f"1 Main St\n{hostile}", tax_id="<b>", email="a&b@c.example"))
    page = receipt_html(receipt, Issuer(name=hostile))
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "a&amp;b@c.example" in page and "&lt;b&gt;" in page


def test_the_pdf_holds_the_number_date_parties_amount_and_reference() -> None:
    data = receipt_pdf(RECEIPT, ISSUER)
    assert data.startswith(b"%PDF-")
    words = pdf_words(data)
    for fact in ("Receipt number 42", "2027-01-29", RECEIPT.account, "Acme Ltd", "1 Main Street",
                 "Springfield 12345", "Tax ID: GB987654321", "billing@acme.example",
                 "12.345 USD", "Payment reference cs_test_a1B2c3", "Tollgate Example GmbH",
                 "Tax ID: DE123456789"):  # fmt: skip
        assert fact in words, (fact, words)
    assert receipt_pdf(RECEIPT, ISSUER) == data  # the same receipt, the same bytes


def test_a_pdf_without_details_or_issuer_still_reads() -> None:
    words = pdf_words(receipt_pdf(replace(RECEIPT, billing=BillingDetails(), note=""), None))
    assert "Receipt number 42" in words and "12.345 USD" in words and "Tax ID" not in words


def test_the_pdf_writes_other_scripts_as_plain_letters() -> None:
    assert pdf_text("Zoë Łódź Ærøskøbing € “quoted”") == "Zoë Lódz Ærøskøbing € “quoted”"
    assert pdf_text("山田 ﬁne") == "?? fine"
    receipt = replace(RECEIPT, billing=BillingDetails(name="Łukasz 山田"))
    assert "Lukasz ??" in pdf_words(receipt_pdf(receipt, None))


def test_the_issuer_comes_from_the_config() -> None:
    def settings(issuer: object) -> Settings:
        return parse_settings({"receipt_issuer": issuer}, source="gw.yaml", base_dir=Path("."),
                              env={})  # fmt: skip

    assert parse_settings({}, source="gw.yaml", base_dir=Path("."), env={}).receipt_issuer is None
    assert settings({"name": " Example GmbH ", "tax_id": "DE1"}).receipt_issuer == Issuer(
        "Example GmbH", "", "DE1")
    for bad, problem in (("Example", "receipt_issuer: must be a mapping"),
                         ({"address": "x"}, "receipt_issuer: must be a mapping"),
                         ({"name": "x", "vat": "1"}, "receipt_issuer.vat: unknown field"),
                         ({"name": ""}, "receipt_issuer.name: must be a non-empty string")):
        with pytest.raises(ConfigError, match=f"^gw.yaml: {problem}"):
            settings(bad)
