"""Structured logs: one JSON object per line.

The per-request line (logger ``tollgate.request``) carries ids, model, tokens, cost and
timings, and never a prompt, a completion or a secret: the proxy only ever passes those fields.
Whatever any logger writes is redacted on its way out (:mod:`gateway.observability.redact`), in
the log thread, off the event loop.
"""

from __future__ import annotations

import logging
import queue
import sys
import time
from collections.abc import Iterable
from logging.handlers import QueueHandler, QueueListener
from typing import Any

import orjson

from gateway.observability.redact import Redactor


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return orjson.dumps(entry, default=str).decode()


class RedactingFormatter(logging.Formatter):
    """``inner``'s line with every secret masked."""

    def __init__(self, inner: logging.Formatter, redact: Redactor) -> None:
        super().__init__()
        self._inner, self._redact = inner, redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(self._inner.format(record))


def configure_logging(
    level: str = "INFO", fmt: str = "json", secrets: Iterable[str] = ()
) -> QueueListener:
    """Called once per process by the CLI (never at import): JSON lines (or plain text) on
    stderr, formatted and written by a background thread so that a request's log line costs
    the event loop only a queue put. ``secrets`` (tokens, provider keys) are masked wherever
    they appear. Stop the returned listener at exit to flush it."""
    handler = logging.StreamHandler(sys.stderr)
    inner = JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    handler.setFormatter(RedactingFormatter(inner, Redactor(secrets)))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = QueueListener(records, handler, respect_handler_level=False)
    root = logging.getLogger()
    root.handlers[:] = [_FastQueueHandler(records)]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    listener.start()
    return listener


class _FastQueueHandler(QueueHandler):
    """Hands the record over as it is: the JSON formatter reads ``fields`` itself, so the
    stdlib's prepare() (which formats the message and drops extras) is not needed here."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.exc_info:  # tracebacks do not cross threads well: render them now
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record
