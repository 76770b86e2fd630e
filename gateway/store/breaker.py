"""A circuit breaker in front of Redis, so that an outage costs each request microseconds.

After a Redis connection failure the breaker stays open for ``cooldown`` seconds, and metered
requests are refused at once with 503 ``billing_unavailable`` (fail closed: never free
traffic). When the cooldown ends, requests try Redis again; one more failure re-opens it.
"""

from __future__ import annotations

import time


class Breaker:
    def __init__(self, cooldown: float = 0.5) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0

    def trip(self) -> None:
        self._open_until = time.monotonic() + self.cooldown

    def is_open(self) -> bool:
        return time.monotonic() < self._open_until
