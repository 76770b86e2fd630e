"""Secrets out of log lines, whoever writes them (pure).

The gateway's own log calls never pass a secret, but libraries do: aiohttp quotes the raw bytes
of a request it cannot parse, tracebacks quote arguments. So every line is passed through
``Redactor`` on its way out: API keys (``tg-...``), admin tokens (``tga-...``), provider keys
(``sk-...``), any ``Bearer`` credential or ``x-api-key`` value, and the exact secrets the
gateway was configured with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[redacted]"
_PATTERNS = (
    r"(?<=bearer )[^\s\"',;\\]+",
    r"(?<=x-api-key: )[^\s\"',;\\]+",
    r"(?<=x-api-key:)[^\s\"',;\\]+",
    r"\btga?-[A-Za-z0-9_\-]{16,}",
    r"\bsk-[A-Za-z0-9_\-]{16,}",
)


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        exact = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)
        self._pattern = re.compile("|".join([*_PATTERNS, *map(re.escape, exact)]), re.IGNORECASE)

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text)
