"""Small helpers for JSON request and response bodies (orjson, typed errors)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway import errors

ADMIN_BODY_LIMIT = 64 * 1024


async def json_object(request: web.Request, *, limit: int = ADMIN_BODY_LIMIT) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > limit:
        raise errors.RequestTooLarge(f"The request body is larger than {limit} bytes.")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise errors.RequestTooLarge(f"The request body is larger than {limit} bytes.")
    if not body:
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise errors.InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise errors.InvalidRequest("The request body must be a JSON object.")
    return value


def json_response(
    data: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


def string_field(
    body: dict[str, Any], name: str, *, default: str | None = None, max_len: int = 200
) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise errors.InvalidRequest(
            f"'{name}' must be a non-empty string of at most {max_len} characters.", param=name
        )
    return value


def limit_field(body: dict[str, Any], name: str) -> int:
    """A per-minute limit: a positive integer, or null/absent for none (stored as 0)."""
    value = body.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value > 10**12:
        raise errors.InvalidRequest(f"'{name}' must be a positive integer or null.", param=name)
    return value


MAX_ALLOWED_MODELS = 1000


def models_field(body: dict[str, Any], name: str) -> tuple[str, ...] | None:
    """A model allow-list: a list of model names or globs (``"claude-*"``), or null/absent."""
    value = body.get(name)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > MAX_ALLOWED_MODELS
        or not all(isinstance(m, str) and 0 < len(m) <= 200 and m.strip() == m for m in value)
    ):
        raise errors.InvalidRequest(
            f"'{name}' must be a list of model names or globs (non-empty strings), or null.",
            param=name,
        )
    return tuple(value)
