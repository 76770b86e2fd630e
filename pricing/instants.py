"""Instants for scheduled prices: read an ``effective_from`` value, show it, compare it.

Every instant inside ``pricing`` is an aware ``datetime`` in UTC. A price that starts "on
2026-12-01" starts at midnight UTC, and a date and time written without a zone is UTC too,
because a price change must happen at the same instant in every worker and on every host,
whatever their local time zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

INSTANT_HINT = "an ISO-8601 date like 2026-12-01 or date and time like 2026-12-01T00:00:00Z"


def as_utc(instant: datetime) -> datetime:
    """``instant`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        return instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC)


def parse_instant(value: object) -> datetime:
    """An ``effective_from`` value as an aware UTC datetime.

    Accepts what the YAML loader makes of an unquoted timestamp (``date`` or ``datetime``) and
    ISO-8601 text (a quoted value). Raises ``ValueError`` with a bare problem phrase, so the
    caller can prefix the field's path.
    """
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value.strip()))
        except ValueError:
            pass
    raise ValueError(f"must be {INSTANT_HINT}")


def format_instant(instant: datetime) -> str:
    """``2026-12-01T00:00:00Z``: ISO-8601 in UTC, with fractions of a second only if set."""
    utc = as_utc(instant)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"
