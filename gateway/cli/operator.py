"""Operator commands over the admin API: accounts, keys, top-ups, refunds, wallets, transactions.

    tollgate accounts list|create|show|update ...
    tollgate keys create|list|update|revoke ...
    tollgate topup ACCOUNT AMOUNT --order-id ID      tollgate refund ACCOUNT AMOUNT --order-id ID
    tollgate adjust ACCOUNT AMOUNT --order-id ID --reason TEXT [--operator NAME]
    tollgate credit ACCOUNT AMOUNT --order-id ID [--expires-at T] [--priority N]
    tollgate vouchers create AMOUNT [--max N] [--valid-until T] [--credit-expires-at T]
    tollgate wallet ACCOUNT                          tollgate transactions ACCOUNT [--csv]
    tollgate receipt ACCOUNT NUMBER [--format json|html|pdf] [--out FILE]
    tollgate admin-token rotate [--grace SECONDS]

Each prints a table, or JSON with ``--json``; a failure is one line on stderr and exit code 1
(2 for a usage mistake). Arguments are parsed by click, tables drawn by rich.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import orjson
from rich.console import Console
from rich.table import Table

from gateway.cli.admin_client import DEFAULT_URL, AdminClient, AdminError, find_token
from gateway.cli.key_options import key_body, key_options

COMMANDS = ("accounts", "keys", "topup", "refund", "adjust", "credit", "vouchers", "wallet",
            "transactions", "admin-token", "receipt")
ACCOUNT_COLUMNS = ("id", "name", "plan", "status", "hold_policy", "rpm", "tpm", "created_at")
KEY_COLUMNS = ("id", "project", "name", "role", "rpm", "tpm", "models", "allowed_ips",
               "expires_at", "created_at")
TXN_COLUMNS = ("id", "type", "amount", "order_id", "balance_after", "created_at", "note",
               "receipt_number")


class Out:
    """Where answers go: JSON, or rich tables."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console(soft_wrap=True, highlight=False)

    def record(self, data: dict[str, Any]) -> None:
        if self.as_json:
            return self.json(data)
        table = Table(show_header=False)
        table.add_column(style="bold")
        table.add_column()
        for name, value in data.items():
            table.add_row(name, _cell(value))
        self.console.print(table)

    def rows(self, rows: list[dict[str, Any]], columns: Sequence[str], **extra: Any) -> None:
        if self.as_json:
            return self.json({"data": rows, **extra})
        table = Table(*columns)
        for row in rows:
            table.add_row(*(_cell(row.get(c)) for c in columns))
        self.console.print(table)
        for name, value in extra.items():
            if value is not None:
                self.console.print(f"{name}: {value}")

    def json(self, data: Any) -> None:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


def admin_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command takes, and one line for any failure."""

    @click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
    @click.option("--url", envvar="TOLLGATE_URL", default=DEFAULT_URL, show_default=True,
                  help="the gateway (or TOLLGATE_URL)")
    @click.option("--token", envvar="TOLLGATE_ADMIN_TOKEN", default=None,
                  help="the admin token (or TOLLGATE_ADMIN_TOKEN; else DATA_DIR/admin_token)")
    @click.option("--data-dir", default=".tollgate", show_default=True, type=click.Path(),
                  help="where tollgate serve saved a token it made")
    @functools.wraps(func)
    def run(as_json: bool, url: str, token: str | None, data_dir: str, **kwargs: Any) -> None:
        try:
            client = AdminClient(url, find_token(token, Path(data_dir)))
            func(client, Out(as_json), **kwargs)
        except AdminError as exc:
            raise click.ClickException(str(exc)) from None

    return run


@click.group()
def cli() -> None:
    """Tollgate's operator commands (clients of the admin API)."""


# -- accounts ----------------------------------------------------------------------------------


@cli.group()
def accounts() -> None:
    """List, create, show and update accounts."""


@accounts.command("list")
@click.option("--search", default=None, help="part of the name or id")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--after", default=None, help="the cursor a previous page printed as next")
@admin_command
def accounts_list(client: AdminClient, out: Out, search: str | None, limit: int,
                  after: str | None) -> None:  # fmt: skip
    page = client.call("GET", "/admin/accounts",
                       query={"search": search, "limit": limit, "after": after})  # fmt: skip
    out.rows(page["data"], ACCOUNT_COLUMNS, next=page.get("next"))


@accounts.command("create")
@click.argument("name")
@click.option("--plan", default=None)
@click.option("--hold-policy", type=click.Choice(["strict", "postpaid"]), default=None)
@admin_command
def accounts_create(client: AdminClient, out: Out, name: str, plan: str | None,
                    hold_policy: str | None) -> None:  # fmt: skip
    body = _present(name=name, plan=plan, hold_policy=hold_policy)
    out.record(client.call("POST", "/admin/accounts", body))


@accounts.command("show")
@click.argument("account")
@admin_command
def accounts_show(client: AdminClient, out: Out, account: str) -> None:
    out.record(client.call("GET", f"/admin/accounts/{_seg(account)}"))


@accounts.command("update")
@click.argument("account")
@click.option("--name", default=None)
@click.option("--plan", default=None)
@click.option("--status", type=click.Choice(["active", "suspended", "closed"]), default=None,
              help="suspended refuses its keys until active again; closed is for good")
@click.option("--hold-policy", type=click.Choice(["strict", "postpaid"]), default=None)
@click.option("--rpm", type=click.IntRange(1), default=None)
@click.option("--tpm", type=click.IntRange(1), default=None)
@click.option("--billing-name", default=None, help="who receipts are made out to ('' clears it)")
@click.option("--billing-address", default=None, help="its address (lines: newlines)")
@click.option("--tax-id", default=None, help="its tax or VAT id on receipts")
@click.option("--billing-email", default=None)
@click.option("--credits-per-usd", type=click.IntRange(0, 10**6), default=None,
              help="show the wallet in credits too, this many to the dollar (0: USD only)")
@admin_command
def accounts_update(client: AdminClient, out: Out, account: str, billing_name: str | None,
                    billing_address: str | None, tax_id: str | None, billing_email: str | None,
                    credits_per_usd: int | None, **fields: Any) -> None:  # fmt: skip
    body = _present(**fields)
    billing = _present(name=billing_name, address=billing_address, tax_id=tax_id,
                       email=billing_email)  # fmt: skip
    if billing:
        body["billing"] = billing
    if credits_per_usd is not None:
        body["credits_per_usd"] = credits_per_usd or None
    if not body:
        raise AdminError("nothing to update: give at least one of --name, --plan, --status, "
                         "--hold-policy, --rpm, --tpm, --billing-name, --billing-address, "
                         "--tax-id, --billing-email, --credits-per-usd")  # fmt: skip
    out.record(client.call("PATCH", f"/admin/accounts/{_seg(account)}", body))


# -- keys --------------------------------------------------------------------------------------


@cli.group()
def keys() -> None:
    """Create, list, update and revoke API keys."""


@keys.command("create")
@click.argument("account")
@click.option("--project", default=None)
@key_options
@admin_command
def keys_create(client: AdminClient, out: Out, account: str, **fields: Any) -> None:
    out.record(client.call("POST", f"/admin/accounts/{_seg(account)}/keys", key_body(fields)))


@keys.command("update")
@click.argument("key_id")
@key_options
@admin_command
def keys_update(client: AdminClient, out: Out, key_id: str, **fields: Any) -> None:
    """Change KEY_ID's settings (its project and secret stay); the options left out stay."""
    body = key_body(fields)
    if not body:
        raise AdminError("nothing to update: give at least one option (tollgate keys update "
                         "--help)")  # fmt: skip
    out.record(client.call("PATCH", f"/admin/keys/{_seg(key_id)}", body))


@keys.command("list")
@click.argument("account")
@admin_command
def keys_list(client: AdminClient, out: Out, account: str) -> None:
    out.rows(client.call("GET", f"/admin/accounts/{_seg(account)}/keys")["data"], KEY_COLUMNS)


@keys.command("revoke")
@click.argument("key_id")
@admin_command
def keys_revoke(client: AdminClient, out: Out, key_id: str) -> None:
    out.record(client.call("DELETE", f"/admin/keys/{_seg(key_id)}"))


# -- money -------------------------------------------------------------------------------------


def _money_command(kind: str, path: str, help_text: str) -> None:
    @cli.command(kind, help=help_text)
    @click.argument("account")
    @click.argument("amount")
    @click.option("--order-id", required=True, help="idempotency: a replay changes nothing")
    @click.option("--note", default=None)
    @admin_command
    def move(client: AdminClient, out: Out, account: str, amount: str, order_id: str,
             note: str | None) -> None:  # fmt: skip
        body = _present(amount=amount, order_id=order_id, note=note)
        out.record(client.call("POST", f"/admin/accounts/{_seg(account)}/{path}", body))


_money_command("topup", "topups", "Add cash to ACCOUNT's wallet (AMOUNT in USD, e.g. 10.00).")


@cli.command()
@click.argument("account")
@click.argument("amount")
@click.option("--order-id", required=True, help="idempotency: a replay changes nothing")
@click.option("--topup", default=None, help="the order id of the top-up it returns "
              "(default: the newest top-ups first)")  # fmt: skip
@click.option("--note", default=None)
@admin_command
def refund(client: AdminClient, out: Out, account: str, **fields: Any) -> None:
    """Return unused cash from ACCOUNT's wallet (AMOUNT in USD), against a top-up."""
    out.record(client.call("POST", f"/admin/accounts/{_seg(account)}/refunds", _present(**fields)))


@cli.command()
@click.argument("account")
@click.argument("amount")
@click.option("--order-id", required=True, help="idempotency: a replay changes nothing")
@click.option("--reason", required=True, help="why (kept with the transaction)")
@click.option("--operator", default=lambda: os.environ.get("USER") or "operator",
              show_default="$USER", help="who makes it")  # fmt: skip
@admin_command
def adjust(client: AdminClient, out: Out, account: str, **fields: Any) -> None:
    """Correct ACCOUNT's cash by a signed AMOUNT in USD (e.g. -2.50), with a reason."""
    path = f"/admin/accounts/{_seg(account)}/adjustments"
    out.record(client.call("POST", path, _present(**fields)))


@cli.command()
@click.argument("account")
@click.argument("amount")
@click.option("--order-id", required=True, help="the grant's id; a replay changes nothing")
@click.option("--expires-at", default=None, help="RFC 3339; what is left then expires")
@click.option("--priority", type=click.IntRange(0, 9999), default=None,
              help="higher is spent first (default 0)")
@click.option("--note", default=None)
@admin_command
def credit(client: AdminClient, out: Out, account: str, **fields: Any) -> None:
    """Grant ACCOUNT credits (AMOUNT in USD), spent before its cash."""
    out.record(client.call("POST", f"/admin/accounts/{_seg(account)}/credits", _present(**fields)))


@cli.group()
def vouchers() -> None:
    """Voucher codes, each worth a credit grant to the accounts that redeem it."""


@vouchers.command("create")
@click.argument("amount")
@click.option("--max", "max_redemptions", type=click.IntRange(1), default=None,
              help="how many accounts may redeem it (default 1)")
@click.option("--valid-until", default=None, help="RFC 3339: the last moment to redeem it")
@click.option("--credit-expires-at", default=None, help="RFC 3339: when its credit ends")
@click.option("--code", default=None, help="your own code (A-Z, 0-9, '-'); default: made up")
@admin_command
def vouchers_create(client: AdminClient, out: Out, **fields: Any) -> None:
    out.record(client.call("POST", "/admin/vouchers", _present(**fields)))


@cli.command()
@click.argument("account")
@admin_command
def wallet(client: AdminClient, out: Out, account: str) -> None:
    """ACCOUNT's wallet: balance, cash, credits, free quota, held, month spend."""
    out.record(client.call("GET", f"/admin/accounts/{_seg(account)}/wallet"))


@cli.command()
@click.argument("account")
@click.option("--csv", "as_csv", is_flag=True, help="print CSV (as the admin API gives it)")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@admin_command
def transactions(client: AdminClient, out: Out, account: str, as_csv: bool, limit: int) -> None:
    """ACCOUNT's money flow: top-ups, refunds, credits (newest first)."""
    path = f"/admin/accounts/{_seg(account)}/transactions"
    if as_csv:
        sys.stdout.write(client.call("GET", path, query={"format": "csv", "limit": limit}))
        return
    page = client.call("GET", path, query={"limit": limit})
    out.rows(page["data"], TXN_COLUMNS, next=page.get("next"))


@cli.command()
@click.argument("account")
@click.argument("number", type=click.IntRange(1))
@click.option("--format", "form", type=click.Choice(["json", "html", "pdf"]), default="json",
              show_default=True, help="html: a printable page; pdf: a PDF file")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="write it to FILE (a PDF goes to a file or a pipe, never a terminal)")
@admin_command
def receipt(client: AdminClient, out: Out, account: str, number: int, form: str,
            out_file: str | None) -> None:  # fmt: skip
    """ACCOUNT's receipt NUMBER (every top-up has one, numbered from 1)."""
    path = f"/admin/accounts/{_seg(account)}/receipts/{number}"
    raw, _ = client.fetch("GET", path, query={"format": form} if form != "json" else None)
    if out_file is not None:
        try:
            Path(out_file).write_bytes(raw)
        except OSError as exc:
            raise AdminError(f"cannot write {out_file}: {exc.strerror}") from None
        out.record({"receipt": number, "format": form, "path": out_file, "bytes": len(raw)})
    elif form == "json":
        out.record(orjson.loads(raw))
    elif form == "pdf" and sys.stdout.isatty():
        raise AdminError("a PDF is not for a terminal: give --out FILE, or redirect the output")
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()


@cli.group("admin-token")
def admin_token() -> None:
    """Rotate the admin token without downtime."""


@admin_token.command("rotate")
@click.option("--grace", type=click.IntRange(0, 30 * 86400), default=3600, show_default=True,
              help="seconds the token used for this call keeps working")
@admin_command
def admin_token_rotate(client: AdminClient, out: Out, grace: int) -> None:
    """Make a new admin token (printed once); the current one ends after --grace seconds."""
    out.record(client.call("POST", "/admin/tokens/rotate", {"grace_seconds": grace}))


def _present(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _seg(text: str) -> str:
    """One path segment, quoted (an id never moves the request to another route)."""
    return quote(text, safe="")


def run(argv: Sequence[str]) -> int:
    """Run an operator command; its exit code."""
    try:
        cli.main(args=list(argv), prog_name="tollgate", standalone_mode=False)
    except click.ClickException as exc:
        click.echo(f"tollgate: {exc.format_message()}", err=True)
        return 2 if isinstance(exc, click.UsageError) else 1
    except click.exceptions.Abort:
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0
