"""A request body that must be one JSON object, read without any HTTP machinery. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from gateway import errors


def parse_object(body: bytes) -> dict[str, Any]:
    """A JSON object from ``body``, or a 400 saying what is wrong with it."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise errors.InvalidRequest(
            "The request body is not valid JSON."
            if body
            else "The request body is empty; send a JSON object."
        ) from None
    if not isinstance(value, dict):
        raise errors.InvalidRequest("The request body must be a JSON object.")
    return value
