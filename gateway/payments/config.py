"""The ``payments`` section of the gateway config (pure).

    payments:
      stripe:
        secret_key_env: STRIPE_SECRET_KEY        # the API key, from the environment
        webhook_secret_env: STRIPE_WEBHOOK_SECRET  # the endpoint's signing secret (whsec_...)
        api_base: null                           # another API address (a fake in tests)

Without ``stripe`` the payment provider is ``webhook``. The secrets are only ever read from
the environment, so the file never holds one; a configured variable that is not set stops
start-up (a Stripe set-up that cannot check a signature would refuse every payment's event).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

Fail = Callable[[str, str], Exception]
_STRIPE_FIELDS = ("secret_key_env", "webhook_secret_env", "api_base")


@dataclass(frozen=True, slots=True)
class StripeConfig:
    secret_key: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    api_base: str | None = None  # None: Stripe's own (https://api.stripe.com)


@dataclass(frozen=True, slots=True)
class PaymentsConfig:
    stripe: StripeConfig | None = None

    @property
    def provider(self) -> str:
        """The payment provider's name: "stripe" or "webhook"."""
        return "stripe" if self.stripe else "webhook"

    def secrets(self) -> list[str]:
        """The secrets this section holds (kept out of the logs)."""
        return [self.stripe.secret_key, self.stripe.webhook_secret] if self.stripe else []


def parse_payments(value: object, fail: Fail, env: Mapping[str, str]) -> PaymentsConfig:
    """``payments`` from the config file (absent or null: no provider but webhooks);
    ``fail(field, problem)`` is raised for what is wrong."""
    if value is None:
        return PaymentsConfig()
    if not isinstance(value, dict):
        raise fail("payments", "must be a mapping, e.g. {stripe: {secret_key_env: ...}}")
    for key in value:
        if key != "stripe":
            raise fail(f"payments.{key}", "unknown field; expected stripe")
    stripe = value.get("stripe")
    if stripe is None:
        return PaymentsConfig()
    return PaymentsConfig(stripe=_parse_stripe(stripe, fail, env))


def _parse_stripe(value: object, fail: Fail, env: Mapping[str, str]) -> StripeConfig:
    if not isinstance(value, dict):
        raise fail("payments.stripe", "must be a mapping with secret_key_env and "
                   "webhook_secret_env")  # fmt: skip
    for key in value:
        if key not in _STRIPE_FIELDS:
            raise fail(f"payments.stripe.{key}",
                       f"unknown field; expected one of {', '.join(_STRIPE_FIELDS)}")  # fmt: skip
    secret_key = _secret(value, "secret_key_env", "STRIPE_SECRET_KEY", fail, env)
    webhook_secret = _secret(value, "webhook_secret_env", "STRIPE_WEBHOOK_SECRET", fail, env)
    api_base = value.get("api_base")
    if api_base is not None and not _http_base(api_base):
        raise fail("payments.stripe.api_base", "must be an http:// or https:// URL with a host "
                   "and no path (Stripe's paths start with /v1), or null")  # fmt: skip
    return StripeConfig(secret_key, webhook_secret, api_base.rstrip("/") if api_base else None)


def _secret(
    value: dict[object, object], name: str, default: str, fail: Fail, env: Mapping[str, str]
) -> str:
    variable = value.get(name, default)
    where = f"payments.stripe.{name}"
    if not isinstance(variable, str) or not variable:
        raise fail(where, "must be the name of an environment variable")
    secret = env.get(variable, "").strip()
    if not secret:
        raise fail(where, f"the environment variable {variable} is not set")
    return secret


def _http_base(url: object) -> bool:
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname)
            and parts.path.strip("/") == "" and not parts.query and not parts.fragment)  # fmt: skip
