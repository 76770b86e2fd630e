"""Times as the APIs show them: RFC 3339 in UTC, from the integers the wallet keeps (pure)."""

from __future__ import annotations

import time


def utc(seconds: float) -> str:
    """``2027-01-31T12:00:00Z`` (whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def utc_ms(ms: int, *, millis: bool = False) -> str:
    """A unix time in ms as ``utc`` does, or with ``millis`` as ``...:00.123Z``."""
    if not millis:
        return utc(ms / 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
