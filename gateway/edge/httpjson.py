"""Small helpers for JSON request and response bodies (orjson, typed errors)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from gateway import errors
from gateway.codecs.json_object import parse_object

ADMIN_BODY_LIMIT = 64 * 1024


async def read_body(request: web.Request, limit: int, within: float | None = None) -> bytes:
    """The whole request body, refused with 413 as soon as it passes ``limit`` bytes, and with
    408 when it has not all arrived ``within`` seconds after the headers (a client that
    uploads a byte at a time must not hold a connection for as long as it likes)."""
    if request.content_length is not None and request.content_length > limit:
        raise errors.RequestTooLarge(f"The request body is larger than {limit} bytes.")
    content = request.content
    if content.is_eof() and content.total_bytes <= limit:  # all arrived with the headers
        return content.read_nowait()
    try:
        async with asyncio.timeout(within):
            return await _read_all(content, limit)
    except TimeoutError:
        raise errors.RequestTimeout(
            f"The request body did not arrive within {within:g} seconds."
        ) from None


async def _read_all(content: Any, limit: int) -> bytes:
    chunks = []
    size = 0
    async for chunk in content.iter_any():
        size += len(chunk)
        if size > limit:
            raise errors.RequestTooLarge(f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def json_object(request: web.Request, *, limit: int = ADMIN_BODY_LIMIT) -> dict[str, Any]:
    """An admin body: a JSON object, or {} when there is no body at all."""
    body = await read_body(request, limit)
    return parse_object(body) if body else {}


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
