"""The ``Tollgate-Signature`` header of a webhook, and its check for receivers (pure).

    Tollgate-Signature: t=1765148400,v1=5257a869e7ec...d8bd   (64 hex digits)

``v1`` is the hex HMAC-SHA256 of ``"<t>.<body>"`` (the unix time, a dot, the raw body bytes)
keyed with the account's webhook secret (the whole ``whsec_...`` string, as UTF-8). The time
is signed with the body, so a receiver that refuses an old ``t`` refuses a replayed request;
the check compares digests in constant time. A header may carry several ``v1`` (while a
secret changes): any one that matches will do. README's "Webhooks" shows the same recipe.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Tollgate-Signature"
SCHEME = "v1"
TOLERANCE = 300  # seconds a receiver accepts between ``t`` and its own clock, either way


def digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header's value for ``body`` sent at ``timestamp`` (default: now)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},{SCHEME}={digest(secret, t, body)}"


def verify(
    secret: str, header: str, body: bytes, tolerance: int = TOLERANCE, now: float | None = None
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` at a time within ``tolerance`` seconds
    of ``now`` (default: this clock). ``body`` must be the raw bytes received, not re-encoded
    JSON."""
    t, candidates = _parse(header)
    if t is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = digest(secret, t, body).encode()
    return any(hmac.compare_digest(expected, c.encode()) for c in candidates)


def _parse(header: str) -> tuple[int | None, list[str]]:
    t: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():
            t = int(value)
        elif name == SCHEME and value:
            candidates.append(value)
    return t, candidates
