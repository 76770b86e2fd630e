"""When a failed delivery is tried again, and when it is given up (pure).

The wait doubles after each failure, from ``first`` (1 s) up to ``most`` (1 h). An event is
tried for ``retry_for`` (26 h: a receiver down for a day and a bit still gets it) after its
first try; the last try is at that deadline, and a failure then marks the event ``failed``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float = 1.0  # seconds
    most: float = 3600.0
    retry_for: float = 26 * 3600.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (from 1)."""
        return float(min(self.first * 2 ** min(max(failures - 1, 0), 60), self.most))

    def next_try_ms(self, failures: int, first_ms: int, now_ms: int) -> int | None:
        """When (unix ms) to try again after the ``failures``-th failure, for an event first
        tried at ``first_ms``; None once its time is up."""
        deadline = first_ms + int(self.retry_for * 1000)
        if now_ms >= deadline:
            return None
        return min(now_ms + int(self.delay(failures) * 1000), deadline)
