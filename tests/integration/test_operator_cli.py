"""The operator commands against a running gateway (a tollgate serve process on a real Redis):
every command, as a table and as JSON; failures as one line and a non-zero exit."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.cli import operator
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import ADMIN_TOKEN, GatewayProcess

pytestmark = pytest.mark.redis_cluster_too

Spawn = Callable[..., Awaitable[GatewayProcess]]


class Cli:
    def __init__(self, url: str, capsys: Any, monkeypatch: Any) -> None:
        self.capsys = capsys
        monkeypatch.setenv("TOLLGATE_URL", url)
        monkeypatch.setenv("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        monkeypatch.setenv("COLUMNS", "200")  # tables wide enough to keep ids on one line

    def run(self, *args: str, code: int = 0) -> tuple[str, str]:
        self.capsys.readouterr()
        got = operator.run(list(args))
        out, err = self.capsys.readouterr()
        assert got == code, (args, got, out, err)
        return out, err

    def json(self, *args: str) -> Any:
        return orjson.loads(self.run(*args, "--json")[0])


@pytest.fixture
async def cli(spawn: Spawn, upstream: FakeUpstream, capsys: Any, monkeypatch: Any) -> Cli:
    return Cli((await spawn()).url, capsys, monkeypatch)


async def test_accounts_commands_as_tables_and_json(cli: Cli) -> None:
    acme = cli.json("accounts", "create", "acme", "--plan", "pro")
    assert acme["name"] == "acme" and acme["plan"] == "pro" and acme["status"] == "active"
    out, _ = cli.run("accounts", "create", "beta-corp", "--hold-policy", "postpaid")
    assert "beta-corp" in out and "postpaid" in out
    listed = cli.json("accounts", "list")
    assert {a["name"] for a in listed["data"]} == {"acme", "beta-corp"} and listed["next"] is None
    out, _ = cli.run("accounts", "list", "--search", "acme")
    assert acme["id"] in out and "beta-corp" not in out
    page = cli.json("accounts", "list", "--limit", "1")
    assert len(page["data"]) == 1 and page["next"] == page["data"][0]["id"]
    assert cli.json("accounts", "show", acme["id"])["id"] == acme["id"]
    out, _ = cli.run("accounts", "show", acme["id"])
    assert acme["id"] in out and "hold_policy" in out
    assert cli.json("accounts", "update", acme["id"], "--status", "suspended")["status"] == (
        "suspended")
    out, _ = cli.run("accounts", "update", acme["id"], "--status", "active", "--rpm", "60")
    assert "active" in out and "60" in out


async def test_keys_commands_as_tables_and_json(cli: Cli) -> None:
    account = cli.json("accounts", "create", "acme")["id"]
    made = cli.json("keys", "create", account, "--project", "web", "--models", "gpt-*,claude-*")
    assert made["key"].startswith("tg-") and made["models"] == ["gpt-*", "claude-*"]
    out, _ = cli.run("keys", "create", account, "--name", "ci", "--expires-at",
                     "2099-01-01T00:00:00Z")  # fmt: skip
    assert "tg-" in out and "2099-01-01T00:00:00Z" in out
    listed = cli.json("keys", "list", account)
    assert len(listed["data"]) == 2 and all("key" not in k for k in listed["data"])
    out, _ = cli.run("keys", "list", account)
    assert made["id"] in out and "web" in out
    assert cli.json("keys", "revoke", made["id"]) == {"id": made["id"], "deleted": True}
    other = next(k["id"] for k in listed["data"] if k["id"] != made["id"])
    out, _ = cli.run("keys", "revoke", other)
    assert "deleted" in out
    assert cli.json("keys", "list", account)["data"] == []


async def test_money_commands_as_tables_and_json(cli: Cli) -> None:
    account = cli.json("accounts", "create", "acme")["id"]
    first = cli.json("topup", account, "10.00", "--order-id", "o-1")
    assert first["amount"] == "10.00" and first["order_id"] == "o-1"
    assert cli.json("topup", account, "10.00", "--order-id", "o-1") == first  # a replay
    out, _ = cli.run("topup", account, "5.50", "--order-id", "o-2", "--note", "by phone")
    assert "5.50" in out and "by phone" in out
    assert cli.json("refund", account, "1.25", "--order-id", "r-1")["type"] == "refund"
    out, _ = cli.run("refund", account, "0.25", "--order-id", "r-2")
    assert "refund" in out
    made = cli.json("credit", account, "2.50", "--order-id", "promo-1", "--priority", "3",
                    "--expires-at", "2099-01-01T00:00:00Z")  # fmt: skip
    assert made["type"] == "credit" and made["amount"] == "2.50"
    out, _ = cli.run("credit", account, "0.50", "--order-id", "sorry-1", "--note", "outage")
    assert "credit" in out and "outage" in out
    wallet = cli.json("wallet", account)
    assert wallet["balance"] == "17.00" and wallet["cash"] == "14.00", wallet
    assert [g["id"] for g in wallet["credit_grants"]] == ["promo-1", "sorry-1"]
    out, _ = cli.run("wallet", account)
    assert "balance" in out and "17.00" in out and "promo-1" in out
    txns = cli.json("transactions", account)
    assert [t["order_id"] for t in txns["data"]] == ["sorry-1", "promo-1", "r-2", "r-1", "o-2",
                                                     "o-1"]  # fmt: skip
    out, _ = cli.run("transactions", account)
    assert "o-2" in out and "r-1" in out
    out, _ = cli.run("transactions", account, "--csv")
    assert out.splitlines()[0].startswith("id,type,amount,order_id") and len(out.splitlines()) == 7


async def test_vouchers_create_as_table_and_json(cli: Cli) -> None:
    made = cli.json("vouchers", "create", "5.00", "--max", "3", "--code", "WELCOME-1")
    assert made == {"code": "WELCOME-1", "amount": "5.00", "max_redemptions": 3,
                    "valid_until": None, "credit_expires_at": None}  # fmt: skip
    out, _ = cli.run("vouchers", "create", "1.00")
    assert "TG-" in out and "1.00" in out


async def test_failures_are_one_line_and_a_non_zero_exit(
    cli: Cli, monkeypatch: Any, tmp_path: Path
) -> None:
    _, err = cli.run("wallet", "no-such-account", code=1)
    assert err.startswith("tollgate: 404 not_found:") and err.count("\n") == 1, err
    account = cli.json("accounts", "create", "acme")["id"]
    cli.run("topup", account, "10.00", "--order-id", "same")
    _, err = cli.run("topup", account, "11.00", "--order-id", "same", code=1)
    assert "409 conflict" in err
    _, err = cli.run("topup", account, "ten", "--order-id", "x", code=1)
    assert "400 invalid_request" in err
    _, err = cli.run("topup", account, "10.00", code=2)  # --order-id is required
    assert "order-id" in err
    _, err = cli.run("wallet", account, "--token", "wrong", code=1)
    assert "401 invalid_admin_token" in err
    _, err = cli.run("wallet", account, "--url", "http://127.0.0.1:9", code=1)
    assert "cannot reach the gateway at http://127.0.0.1:9" in err
    monkeypatch.delenv("TOLLGATE_ADMIN_TOKEN")
    _, err = cli.run("wallet", account, "--data-dir", str(tmp_path), code=1)
    assert "no admin token" in err
    (tmp_path / "admin_token").write_text(ADMIN_TOKEN + "\n")
    out, _ = cli.run("wallet", account, "--data-dir", str(tmp_path), "--json")
    assert orjson.loads(out)["balance"] == "10.00"


async def test_the_console_script_runs_them(cli: Cli) -> None:
    account = cli.json("accounts", "create", "acme")["id"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "wallet", account, "--json", env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    assert orjson.loads(out)["balance"] == "0.00"
