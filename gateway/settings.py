"""Gateway configuration: one YAML file, validated into frozen dataclasses.

Every problem is reported as one line naming the file, the field and what is wrong, so a bad
deploy fails at start-up with something an operator can act on. What needs the pricing file
too (aliases, routes, Anthropic cache prices) is checked by ``gateway.cli.config_check``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from gateway.billing.plans import BUILT_IN as BUILT_IN_PLANS
from gateway.billing.plans import Plan, PlanError, parse_plans
from gateway.billing.receipts import Issuer, parse_issuer
from gateway.edge.client_ip import Network, parse_trusted_proxies
from gateway.events.dispatch_config import CONFIG_FIELDS, DispatchConfig, parse_dispatch_config
from gateway.payments.config import PaymentsConfig, parse_payments
from gateway.provider_settings import (
    ProviderConfig,
    parse_provider,
)
from pricing.exact_yaml import DuplicateKeyError, UniqueKeyLoader


class ConfigError(ValueError):
    """Configuration problems, each one line phrased as ``<file>: <field>: <problem>``."""


@dataclass(frozen=True, slots=True)
class Settings:
    source: str
    redis_url: str | None
    data_dir: Path
    pricing_file: Path
    providers: tuple[ProviderConfig, ...]
    admin_token: str | None = field(default=None, repr=False)
    max_body_bytes: int = 8 * 1024 * 1024
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    hold_ttl: float = 300.0
    record_ttl: int = 86400  # a settled request's marker (fast lookups, replies to replays)
    ledger_retention: int = 90 * 86400
    default_max_output_tokens: int = 4096
    hold_output_tokens: int | None = 1024  # held without max_tokens (gateway.billing.holds)
    shutdown_timeout: float = 30.0
    redis_cluster: bool = False
    redis_timeout: float = 2.0
    first_byte_timeout: float = 600.0
    total_timeout: float = 3600.0
    # How long a stream may wait on a client that does not read before it is cut (and billed
    # for what was delivered).
    client_write_timeout: float = 30.0
    client_body_timeout: float = 60.0  # a request body must arrive this soon after its headers
    metrics_token: str | None = field(default=None, repr=False)  # bearer token for /metrics
    pool_size: int = 1000
    pricing_poll_interval: float = 2.0
    free_renewal_interval: float = 60.0  # s between looks for a new month (billing.free_renewal)
    log_format: str = "json"
    journal_fsync: str = "interval"  # always | interval | never (gateway.billing.journal)
    journal_stream_interval: float = 2.0  # seconds between journaled progress of a stream
    aliases: Mapping[str, str] = field(default_factory=dict)  # model name clients use -> model
    plans: Mapping[str, Plan] = field(default_factory=lambda: dict(BUILT_IN_PLANS))
    receipt_issuer: Issuer | None = None  # who the receipts name as their issuer
    trusted_proxies: tuple[Network, ...] = ()  # peers whose X-Forwarded-For names the client
    payments: PaymentsConfig = field(default_factory=PaymentsConfig)  # gateway.payments
    webhooks: DispatchConfig = field(default_factory=DispatchConfig)  # gateway.events
    # Where workers share their metrics: set by ``tollgate serve --workers N``, not by the file.
    metrics_dir: Path | None = None

    @property
    def hold_ttl_ms(self) -> int:
        """The hold deadline as the Lua scripts take it (Redis server time, milliseconds)."""
        return int(self.hold_ttl * 1000)

    def secrets(self) -> list[str]:
        """Every secret this configuration holds (kept out of the logs)."""
        found = [self.admin_token, self.metrics_token, *(p.api_key for p in self.providers)]
        return [s for s in [*found, *self.payments.secrets()] if s]

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


_TOP_LEVEL = {
    "redis_url", "data_dir", "pricing_file",
    "providers",
    "max_body_bytes",
    "connect_timeout",
    "read_timeout",
    "hold_ttl",
    "record_ttl",
    "ledger_retention",
    "default_max_output_tokens",
    "hold_output_tokens",
    "shutdown_timeout",
    "redis_cluster",
    "redis_timeout",
    "first_byte_timeout",
    "total_timeout",
    "client_write_timeout",
    "client_body_timeout",
    "metrics_token",
    "pool_size",
    "pricing_poll_interval",
    "log_format",
    "journal_fsync",
    "journal_stream_interval",
    "aliases",
    "plans",
    "receipt_issuer",
    "trusted_proxies",
    "payments",
} | set(CONFIG_FIELDS)  # webhook_* and dispatch_* (gateway.events.dispatch_config)


def load_settings(path: str | os.PathLike[str], env: Mapping[str, str]) -> Settings:
    """Read and validate the config file; ``env`` supplies overrides and provider secrets."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # safe_load, refusing duplicate keys
    except DuplicateKeyError as exc:
        raise ConfigError(f"{source}: {exc.describe(text)}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"{source}: invalid YAML{line}") from None
    return parse_settings(data, source=source, base_dir=Path(path).resolve().parent, env=env)


class _Fields:
    """Typed reads of the config mapping's fields, each failing with the field's name."""

    def __init__(self, data: dict[Any, Any], source: str, base_dir: Path) -> None:
        self.data, self.source, self.base_dir = data, source, base_dir

    def fail(self, field_name: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {field_name}: {problem}")

    def path(self, name: str, default: str) -> Path:
        value = self.data.get(name, default)
        if not isinstance(value, str) or not value:
            raise self.fail(name, "must be a non-empty path")
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p

    # Durations (seconds) and counts only: no money is configured in this file.
    def seconds(self, name: str, default: float) -> float:
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.fail(name, "must be a positive number")
        return float(value)

    def count(self, name: str, default: int) -> int:
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(name, "must be a positive whole number")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.data.get(name, default)
        if value not in choices:
            raise self.fail(name, f"must be one of {', '.join(choices)}")
        return str(value)

    def text(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise self.fail(name, "must be a non-empty string or null")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, "must be true or false")
        return value


def parse_settings(
    data: object, *, source: str, base_dir: Path, env: Mapping[str, str]
) -> Settings:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the file must be a YAML mapping")
    f = _Fields(data, source, base_dir)
    for key in data:
        if key not in _TOP_LEVEL:
            expected = ", ".join(sorted(_TOP_LEVEL))
            raise f.fail(str(key), f"unknown field; expected one of {expected}")

    redis_url = data.get("redis_url")
    if redis_url is not None and not isinstance(redis_url, str):
        raise f.fail("redis_url", "must be a string like redis://host:6379/0 or null")
    redis_url = env.get("TOLLGATE_REDIS_URL") or redis_url

    providers = tuple(
        parse_provider(item, f"providers[{i}]", f.fail, env)
        for i, item in enumerate(_list(data.get("providers", []), "providers", f.fail))
    )
    names = [p.name for p in providers]
    for name in names:
        if names.count(name) > 1:
            raise f.fail("providers", f"duplicate provider name {name!r}")

    settings = Settings(
        source=source,
        redis_url=redis_url,
        data_dir=f.path("data_dir", ".tollgate"),
        pricing_file=f.path("pricing_file", "pricing.yaml"),
        providers=providers,
        admin_token=env.get("TOLLGATE_ADMIN_TOKEN") or None,
        max_body_bytes=f.count("max_body_bytes", 8 * 1024 * 1024),
        connect_timeout=f.seconds("connect_timeout", 10.0),
        read_timeout=f.seconds("read_timeout", 600.0),
        hold_ttl=f.seconds("hold_ttl", 300.0),
        record_ttl=f.count("record_ttl", 86400),
        ledger_retention=f.count("ledger_retention", 90 * 86400),
        shutdown_timeout=f.seconds("shutdown_timeout", 30.0),
        redis_cluster=f.flag("redis_cluster", False),
        redis_timeout=f.seconds("redis_timeout", 2.0),
        first_byte_timeout=f.seconds("first_byte_timeout", 600.0),
        total_timeout=f.seconds("total_timeout", 3600.0),
        client_write_timeout=f.seconds("client_write_timeout", 30.0),
        client_body_timeout=f.seconds("client_body_timeout", 60.0),
        metrics_token=env.get("TOLLGATE_METRICS_TOKEN") or f.text("metrics_token"),
        pool_size=f.count("pool_size", 1000),
        pricing_poll_interval=f.seconds("pricing_poll_interval", 2.0),
        log_format=f.choice("log_format", ("json", "text"), "json"),
        journal_fsync=f.choice("journal_fsync", ("always", "interval", "never"), "interval"),
        journal_stream_interval=f.seconds("journal_stream_interval", 2.0),
        default_max_output_tokens=f.count("default_max_output_tokens", 4096),
        hold_output_tokens=f.count("hold_output_tokens", 1024)  # null: the whole output ceiling
        if data.get("hold_output_tokens", 0) is not None else None,
        aliases=_parse_aliases(data.get("aliases"), f.fail),
        plans=_parse_plans(data.get("plans"), f),
        receipt_issuer=parse_issuer(data.get("receipt_issuer"), f.fail),
        trusted_proxies=parse_trusted_proxies(data.get("trusted_proxies"), f.fail),
        payments=parse_payments(data.get("payments"), f.fail, env),
    )
    _check_consistent(settings, f)
    return replace(settings, webhooks=parse_dispatch_config(data, f.fail))


def _check_consistent(settings: Settings, f: _Fields) -> None:
    """Settings that are each fine but contradict each other: all of them, one line each.

    The upstream timeouts all count from when a request starts (``gateway.upstream.http1``),
    so one longer than ``total_timeout`` could never fire. A client that stops reading a stream
    is only cut after ``client_write_timeout``, and no upstream timeout runs while the relay
    waits on it, so a longer one would let a stalled client hold a stream (its hold and its
    upstream connection) past the limit of a whole answer.
    """
    s, problems = settings, []
    if s.record_ttl < s.hold_ttl:
        problems.append(f.fail("record_ttl", f"must be at least hold_ttl ({s.hold_ttl:g} s): a "
                               "released request's tombstone must outlive an admission still "
                               "in flight"))  # fmt: skip
    if s.record_ttl > s.ledger_retention:
        problems.append(f.fail("record_ttl", f"must not exceed ledger_retention "
                               f"({s.ledger_retention} s): a request's marker points into the "
                               "ledger"))  # fmt: skip
    for name in ("first_byte_timeout", "read_timeout", "client_write_timeout"):
        if getattr(s, name) > s.total_timeout:
            problems.append(f.fail(name, f"must not exceed total_timeout ({s.total_timeout:g} s), "
                                   "the limit on a whole answer"))  # fmt: skip
    if problems:
        raise ConfigError("\n".join(str(problem) for problem in problems))


def _is_model_name(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= 200
        and value.isprintable()
        and not any(c.isspace() for c in value)
    )


def _parse_plans(value: object, f: _Fields) -> dict[str, Plan]:
    try:
        return parse_plans(value)
    except PlanError as exc:
        raise f.fail(exc.field, exc.problem) from None


def _parse_aliases(value: object, fail: _Fail) -> dict[str, str]:
    """``{alias: model}``: plain model names on both sides, no glob, no alias of an alias."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail("aliases", "must be a mapping of alias to model name, e.g. {fast: gpt-4o-mini}")
    aliases: dict[str, str] = {}
    for alias, model in value.items():
        where = f"aliases.{alias}"
        if not _is_model_name(alias) or any(c in str(alias) for c in "*?["):
            raise fail(where, "an alias must be a model name without spaces or glob characters")
        if not _is_model_name(model):
            raise fail(where, "must be the name of a model (a string without spaces)")
        if model == alias:
            raise fail(where, "an alias cannot stand for itself")
        if model in value:
            raise fail(where, f"{model!r} is itself an alias; point at the model it stands for")
        aliases[alias] = model
    return aliases


def _list(value: object, name: str, fail: _Fail) -> list[object]:
    if not isinstance(value, list):
        raise fail(name, "must be a list")
    return value


_Fail = Callable[[str, str], ConfigError]
