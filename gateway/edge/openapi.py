"""``GET /openapi.json``: the OpenAPI 3.1 description of the client and admin APIs.

The description lives in ``openapi.yaml`` beside this module (YAML reads better than a Python
dict of this size, and its anchors share the responses that repeat). Each app reads it when
it is first asked for, and then serves the same bytes every time.
"""

from __future__ import annotations

import functools
from importlib import metadata, resources
from typing import Any

import orjson
import yaml
from aiohttp import web

SOURCE = "openapi.yaml"


def openapi_document() -> dict[str, Any]:
    """The description as a dict, its ``info.version`` the installed package's."""
    text = (resources.files("gateway.edge") / SOURCE).read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    try:
        document["info"]["version"] = metadata.version("tollgate")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        document["info"]["version"] = "0.0.0"
    return document


def openapi_route() -> web.RouteDef:
    @functools.cache  # read on the first request: most apps (tests) never serve it
    def body() -> bytes:
        return orjson.dumps(openapi_document())

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=body(), content_type="application/json")

    return web.get("/openapi.json", openapi)
