"""Receipts (issue 18): every top-up issues one, numbered per account from 1 without gaps, with
the billing details of its moment; read as JSON, a printable page or a PDF by the operator (the
admin API, the CLI) and by the account's own keys."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import orjson
import pypdf
import pytest

from gateway.cli import operator
from tests.integration.conftest import ADMIN_TOKEN, Gateway

pytestmark = pytest.mark.redis_cluster_too

ACME = {"name": "Acme Ltd", "address": "1 Main Street\nSpringfield 12345", "tax_id": "GB123",
        "email": "ap@acme.example"}  # fmt: skip


async def get(gw: Gateway, path: str, key: str | None = None) -> tuple[int, Any, bytes]:
    """(status, headers, body) of a GET as the operator, or as ``key``."""
    headers = {"Authorization": f"Bearer {key or ADMIN_TOKEN}"}
    async with gw.http.get(gw.url + path, headers=headers) as r:
        return r.status, r.headers, await r.read()


async def topup(gw: Gateway, account: str, amount: str, order_id: str) -> tuple[int, Any]:
    return await gw.admin("POST", f"/admin/accounts/{account}/topups",
                          {"amount": amount, "order_id": order_id})  # fmt: skip


async def receipt(gw: Gateway, account: str, number: int) -> dict[str, Any]:
    status, body = await gw.admin("GET", f"/admin/accounts/{account}/receipts/{number}")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


async def test_thirty_concurrent_topups_are_numbered_one_to_thirty(gateway: Gateway) -> None:
    account, _ = await gateway.account(topup=None)
    made = await asyncio.gather(*(topup(gateway, account, f"{i}.00", f"order-{i}")
                                  for i in range(1, 31)))  # fmt: skip
    assert all(status == 201 for status, _ in made), made
    numbers = {txn["receipt_number"]: txn for _, txn in made}
    assert sorted(numbers) == list(range(1, 31))  # a permutation of 1..30: no gap, no repeat
    status, first = await gateway.admin("GET", f"/admin/accounts/{account}/receipts?limit=20")
    assert status == 200 and first["next"] == "11", first
    status, rest = await gateway.admin(
        "GET", f"/admin/accounts/{account}/receipts?limit=20&before={first['next']}")
    assert status == 200 and rest["next"] is None, rest
    listed = first["data"] + rest["data"]
    assert [r["number"] for r in listed] == list(range(30, 0, -1))  # newest first
    for shown in listed:
        txn = numbers[shown["number"]]
        assert (shown["order_id"], shown["amount"], shown["transaction_id"]) == (
            txn["order_id"], txn["amount"], txn["id"])
        assert shown["account"] == account and shown["currency"] == "USD"
    assert (await gateway.wallet(account))["cash"] == f"{sum(range(1, 31))}.00"


async def test_a_replayed_topup_keeps_its_receipt_and_issues_none(gateway: Gateway) -> None:
    account, _ = await gateway.account(topup=None)
    status, first = await topup(gateway, account, "10.00", "order-1")
    assert status == 201 and first["receipt_number"] == 1, first
    status, again = await topup(gateway, account, "10.00", "order-1")
    assert status == 200 and again == first
    status, _ = await gateway.admin("POST", f"/admin/accounts/{account}/credits",
                                    {"amount": "1.00", "order_id": "promo"})  # fmt: skip
    assert status == 201  # a credit is no payment: no receipt
    status, second = await topup(gateway, account, "5.00", "order-2")
    assert status == 201 and second["receipt_number"] == 2, second
    status, page = await gateway.admin("GET", f"/admin/accounts/{account}/receipts")
    assert [(r["number"], r["order_id"]) for r in page["data"]] == [(2, "order-2"), (1, "order-1")]
    status, txns = await gateway.admin("GET", f"/admin/accounts/{account}/transactions")
    assert [t.get("receipt_number") for t in txns["data"]] == [2, None, 1]


async def test_a_receipt_keeps_the_billing_details_of_its_moment(gateway: Gateway) -> None:
    account, _ = await gateway.account(topup=None, billing=ACME)
    await topup(gateway, account, "10.00", "order-1")
    status, changed = await gateway.admin("PATCH", f"/admin/accounts/{account}",
                                          {"billing": {"name": "Acme Group", "tax_id": None}})
    assert status == 200 and changed["billing"] == {**ACME, "name": "Acme Group", "tax_id": None}
    await topup(gateway, account, "20.00", "order-2")
    first, second = await receipt(gateway, account, 1), await receipt(gateway, account, 2)
    assert first["billing"] == ACME and first["amount"] == "10.00"
    assert second["billing"] == {**ACME, "name": "Acme Group", "tax_id": None}
    assert second["amount"] == "20.00" and second["order_id"] == "order-2"
    assert second["issued_at"].endswith("Z") and second["issuer"] is None
    status, _ = await gateway.admin("PATCH", f"/admin/accounts/{account}", {"billing": None})
    await topup(gateway, account, "1.00", "order-3")
    assert set((await receipt(gateway, account, 3))["billing"].values()) == {None}
    assert (await receipt(gateway, account, 1))["billing"] == ACME


async def test_a_receipt_as_a_page_and_as_a_pdf(gateway: Gateway) -> None:
    hostile = {**ACME, "name": "<script>alert(1)</script> & Co"}
    account, _ = await gateway.account(topup=None, billing=hostile)
    await topup(gateway, account, "12.345", "cs_test_123")
    path = f"/admin/accounts/{account}/receipts/1"
    status, headers, body = await get(gateway, path + "?format=html")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    page = body.decode()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page
    assert "12.345 USD" in page and "cs_test_123" in page and "Springfield 12345" in page
    status, headers, body = await get(gateway, path + "?format=pdf")
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"] == 'attachment; filename="receipt-1.pdf"'
    text = pdf_text(body)
    for fact in ("Receipt number 1", account, "<script>alert(1)</script> & Co", "Tax ID: GB123",
                 "12.345 USD", "Payment reference cs_test_123"):  # fmt: skip
        assert fact in text, (fact, text)
    status, headers, body = await get(gateway, path + "?format=json")
    assert status == 200 and orjson.loads(body)["amount"] == "12.345"
    assert headers["Cache-Control"] == "private, no-store"


async def test_unknown_and_malformed_receipts_are_refused(gateway: Gateway) -> None:
    account, _ = await gateway.account(topup="1.00")
    base = f"/admin/accounts/{account}/receipts"
    status, body = await gateway.admin("GET", f"{base}/2")
    assert status == 404 and body["error"]["code"] == "not_found", body
    assert set(body["error"]) == {"message", "type", "code", "param"}
    for bad in ("0", "abc", "-1", "1.0", "99999999999999999", "\u0661"):
        status, body = await gateway.admin("GET", f"{base}/{bad}")
        assert status == 400 and body["error"]["param"] == "receipt_number", (bad, body)
    status, body = await gateway.admin("GET", f"{base}/1?format=docx")
    assert status == 400 and body["error"]["param"] == "format", body
    status, body = await gateway.admin("GET", f"{base}?before=0")
    assert status == 400 and body["error"]["param"] == "before", body
    status, body = await gateway.admin("GET", "/admin/accounts/no-such-account/receipts/1")
    assert status == 404, body
    async with gateway.http.get(gateway.url + f"{base}/1") as r:
        assert r.status == 401 and (await r.json())["error"]["code"] == "invalid_admin_token"


async def test_a_key_reads_its_own_accounts_receipts_only(gateway: Gateway) -> None:
    mine, key = await gateway.account(topup="10.00")
    theirs, _ = await gateway.account(topup="1.00")
    await topup(gateway, theirs, "2.00", "theirs-2")
    status, _, body = await get(gateway, "/v1/wallet/receipts/1", key)
    assert status == 200 and orjson.loads(body)["account"] == mine
    assert orjson.loads(body)["amount"] == "10.00"
    status, _, body = await get(gateway, "/v1/wallet/receipts/2", key)  # theirs has a 2nd
    assert status == 404 and orjson.loads(body)["error"]["code"] == "not_found"
    status, _, body = await get(gateway, "/v1/wallet/receipts", key)
    assert status == 200 and [r["account"] for r in orjson.loads(body)["data"]] == [mine]
    status, _, body = await get(gateway, "/v1/wallet/receipts/1?format=pdf", key)
    assert status == 200 and "10.00 USD" in pdf_text(body)
    status, _, body = await get(gateway, "/v1/wallet/receipts/1", "tg-not-a-key")
    assert status == 401 and orjson.loads(body)["error"]["code"] == "invalid_api_key"


async def test_the_issuer_named_in_the_config_is_on_every_receipt(make_gateway: Any) -> None:
    from gateway.billing.receipts import Issuer

    gateway = await make_gateway(receipt_issuer=Issuer("Tollgate Example GmbH",
                                                       "Hauptstrasse 1\n10115 Berlin", "DE999"))
    account, _ = await gateway.account(topup="3.00")
    shown = await receipt(gateway, account, 1)
    assert shown["issuer"] == {"name": "Tollgate Example GmbH",
                               "address": "Hauptstrasse 1\n10115 Berlin", "tax_id": "DE999"}
    _, _, body = await get(gateway, f"/admin/accounts/{account}/receipts/1?format=pdf")
    assert "Tollgate Example GmbH" in pdf_text(body) and "Tax ID: DE999" in pdf_text(body)


async def test_the_receipt_command_writes_a_pdf(
    gateway: Gateway, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    account, _ = await gateway.account(topup=None, billing=ACME)
    await topup(gateway, account, "42.00", "order-42")
    monkeypatch.setenv("TOLLGATE_URL", gateway.url)
    monkeypatch.setenv("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("COLUMNS", "200")

    async def tollgate(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        # The command blocks on its HTTP call while this loop serves the gateway.
        code = await asyncio.to_thread(operator.run, list(args))
        out, err = capsys.readouterr()
        return code, out, err

    pdf = tmp_path / "acme-1.pdf"
    code, out, err = await tollgate("receipt", account, "1", "--format", "pdf", "--out", str(pdf))
    assert code == 0 and str(pdf) in out, (out, err)
    text = pdf_text(pdf.read_bytes())
    assert "Receipt number 1" in text and "42.00 USD" in text and "Acme Ltd" in text
    code, out, _ = await tollgate("receipt", account, "1", "--json")
    assert code == 0 and orjson.loads(out)["order_id"] == "order-42"
    code, out, _ = await tollgate("receipt", account, "1")
    assert code == 0 and "order-42" in out and "42.00" in out
    code, out, _ = await tollgate("receipt", account, "1", "--format", "html")
    assert code == 0 and out.startswith("<!doctype html>") and "Acme Ltd" in out
    code, _, err = await tollgate("receipt", account, "7")
    assert code == 1 and "404 not_found" in err, err
    code, out, _ = await tollgate("accounts", "update", account, "--tax-id", "", "--json")
    assert code == 0 and orjson.loads(out)["billing"]["tax_id"] is None
