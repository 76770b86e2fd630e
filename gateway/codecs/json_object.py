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
    try:
        # orjson reads 1023 levels of nesting but writes only 254: a body the gateway rewrites
        # (an alias, an image default, forced stream usage) must be writable, and one that is
        # also stays far below the recursion limit that str() of a field meets (tokens.py).
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise errors.InvalidRequest(
            "The request body nests arrays and objects too deeply (at most 254 levels)."
        ) from None
    return value
