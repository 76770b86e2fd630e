"""Redis replies as text, whichever client read them (redis-py decodes, the lean client may not)."""

from __future__ import annotations

from typing import Any


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
