"""A small synchronous client of the admin API, for the operator commands.

The base URL comes from ``--url`` or ``TOLLGATE_URL`` (default ``http://127.0.0.1:8080``); the
token from ``--token``, ``TOLLGATE_ADMIN_TOKEN``, or the ``admin_token`` file that ``tollgate
serve`` writes in its data directory when it makes one. Every failure is an ``AdminError`` with
one line to print: the gateway's own error message, or why it could not be reached.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import orjson

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT = 30.0


class AdminError(Exception):
    """One line for the operator."""


def find_token(given: str | None, data_dir: Path) -> str:
    """The admin token: given (option or environment), else the data directory's file."""
    if given:
        return given.strip()
    saved = data_dir / "admin_token"
    try:
        return saved.read_text().strip()
    except OSError:
        raise AdminError(
            f"no admin token: set TOLLGATE_ADMIN_TOKEN, pass --token, or run where {saved} "
            "exists (tollgate serve writes it when it makes a token)"
        ) from None


class AdminClient:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._token = token

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        """The answer's JSON (or text, for CSV); AdminError on any failure."""
        raw, kind = self.fetch(method, path, body, query)
        if kind.startswith("application/json"):
            return orjson.loads(raw)
        return raw.decode("utf-8", "replace")

    def fetch(
        self, method: str, path: str, body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
    ) -> tuple[bytes, str]:  # fmt: skip
        """The answer's bytes and its Content-Type (a PDF, a page); AdminError on any failure."""
        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        data = orjson.dumps(body) if body is not None else None
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                raw = answer.read()
                kind = answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raise AdminError(_error_line(exc.code, exc.read())) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AdminError(f"cannot reach the gateway at {self.url}: {reason}") from None
        return raw, kind


def _error_line(status: int, raw: bytes) -> str:
    try:
        error = orjson.loads(raw)["error"]
        return f"{status} {error['code']}: {error['message']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"{status}: {raw[:200].decode('utf-8', 'replace')}"
