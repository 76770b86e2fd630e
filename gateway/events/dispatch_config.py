"""The dispatcher's settings, read from the gateway's config file (pure).

Top-level fields of the file (all optional; seconds unless the name says otherwise)::

    webhook_retry_for: 93600     # how long a failing event is retried after its first try
    webhook_backoff: 1           # the wait after the first failure; doubles after each one
    webhook_backoff_max: 3600    # ... up to this
    webhook_timeout: 10          # one delivery (connect, send, the answer's headers)
    webhook_concurrency: 32      # deliveries in flight at once, per gateway process
    dispatch_claim_after: 30     # a dead process's events are taken over after this
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.events.backoff import Backoff

CONFIG_FIELDS = (
    "webhook_retry_for",
    "webhook_backoff",
    "webhook_backoff_max",
    "webhook_timeout",
    "webhook_concurrency",
    "dispatch_claim_after",
)


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    retry_for: float = 26 * 3600.0
    backoff: float = 1.0
    backoff_max: float = 3600.0
    timeout: float = 10.0
    concurrency: int = 32
    claim_after: float = 30.0

    @property
    def policy(self) -> Backoff:
        return Backoff(first=self.backoff, most=self.backoff_max, retry_for=self.retry_for)

    @property
    def lock_ms(self) -> int:
        """How long an account's delivery lock lasts unless renewed (it is, before each event):
        one event's handlers and delivery, each bounded by the timeout, and a margin. A dead
        holder's account waits this long before another process delivers its events."""
        return int((2 * self.timeout + 2.0) * 1000)


def parse_dispatch_config(
    data: Mapping[Any, Any], fail: Callable[[str, str], Exception]
) -> DispatchConfig:
    """The fields of ``CONFIG_FIELDS`` in ``data`` (the whole file); ``fail(field, problem)``
    makes the error raised for a bad one."""
    defaults = DispatchConfig()

    def seconds(name: str, default: float) -> float:
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise fail(name, "must be a positive number of seconds")
        return float(value)

    concurrency = data.get("webhook_concurrency", defaults.concurrency)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency <= 0:
        raise fail("webhook_concurrency", "must be a positive whole number")
    config = DispatchConfig(
        retry_for=seconds("webhook_retry_for", defaults.retry_for),
        backoff=seconds("webhook_backoff", defaults.backoff),
        backoff_max=seconds("webhook_backoff_max", defaults.backoff_max),
        timeout=seconds("webhook_timeout", defaults.timeout),
        concurrency=concurrency,
        claim_after=seconds("dispatch_claim_after", defaults.claim_after),
    )
    if config.backoff > config.backoff_max:
        raise fail("webhook_backoff", f"must not exceed webhook_backoff_max "
                   f"({config.backoff_max:g} s)")  # fmt: skip
    return config
