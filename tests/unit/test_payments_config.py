"""The ``payments`` config section (gateway.payments.config): what it takes, and one line naming
the field for what it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.observability.redact import Redactor
from gateway.settings import ConfigError, parse_settings

ENV = {"STRIPE_SECRET_KEY": "sk_test_abcdefghijklmnop", "STRIPE_WEBHOOK_SECRET": "whsec_qrstuvwx",
       "OTHER_KEY": "rk_test_zyxwvutsrqponm"}  # fmt: skip


def parse(payments: object, env: dict[str, str] = ENV) -> object:
    return parse_settings({"payments": payments}, source="gw.yaml", base_dir=Path("/"), env=env)


def test_stripe_reads_its_secrets_from_the_environment() -> None:
    settings = parse({"stripe": {"secret_key_env": "OTHER_KEY",
                                 "webhook_secret_env": "STRIPE_WEBHOOK_SECRET",
                                 "api_base": "http://127.0.0.1:9999/"}})  # fmt: skip
    stripe = settings.payments.stripe  # type: ignore[attr-defined]
    assert (stripe.secret_key, stripe.webhook_secret, stripe.api_base) == (
        "rk_test_zyxwvutsrqponm", "whsec_qrstuvwx", "http://127.0.0.1:9999")
    assert settings.payments.provider == "stripe"  # type: ignore[attr-defined]
    assert "rk_test" not in repr(settings) and "whsec_" not in repr(settings)
    line = Redactor(settings.secrets())(f"key {stripe.secret_key} secret {stripe.webhook_secret}")  # type: ignore[attr-defined]
    assert "rk_test" not in line and "whsec_" not in line, line
    defaults = parse({"stripe": {}}).payments.stripe  # type: ignore[attr-defined]
    assert (defaults.secret_key, defaults.api_base) == ("sk_test_abcdefghijklmnop", None)


@pytest.mark.parametrize("payments", [None, {}, {"stripe": None}])
def test_no_stripe_is_the_webhook_provider(payments: object) -> None:
    assert parse(payments).payments.provider == "webhook"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("payments", "env", "field"), [
    ("stripe", ENV, "payments"),
    ({"paypal": {}}, ENV, "payments.paypal"),
    ({"stripe": "yes"}, ENV, "payments.stripe"),
    ({"stripe": {"secret_key": "sk_live_x"}}, ENV, "payments.stripe.secret_key"),
    ({"stripe": {}}, {}, "payments.stripe.secret_key_env"),
    ({"stripe": {"webhook_secret_env": "NOPE"}}, ENV, "payments.stripe.webhook_secret_env"),
    ({"stripe": {"secret_key_env": 5}}, ENV, "payments.stripe.secret_key_env"),
    ({"stripe": {"api_base": "api.stripe.com"}}, ENV, "payments.stripe.api_base"),
    ({"stripe": {"api_base": "https://api.stripe.com/v1"}}, ENV, "payments.stripe.api_base"),
])  # fmt: skip
def test_a_bad_value_is_one_line_naming_the_field(
    payments: object, env: dict[str, str], field: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(payments, env)
    message = str(raised.value)
    assert message.startswith(f"gw.yaml: {field}: ") and "\n" not in message, message
    assert "sk_test" not in message and "whsec" not in message
