"""A webhook receiver on loopback that checks every signature with README's recipe."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verify() -> Callable[..., bool]:
    """The ``verify`` function README's "Webhooks" section shows, run as printed."""
    section = README.read_text().split("\n## Webhooks\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's Webhooks section has no Python recipe"
    namespace: dict[str, Any] = {}
    exec(compile(match[1], "README.md (Webhooks)", "exec"), namespace)
    return namespace["verify"]  # type: ignore[no-any-return]


@dataclass
class Arrival:
    at: float  # monotonic
    event: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Receiver:
    """``POST /hook/{account}``: checks the signature with the account's secret (``secrets``),
    then answers as told: ``fail`` answers 500 to the next n requests, ``fail_if`` to those it
    holds true for, and ``hold`` keeps the first request open until it is set (then 500)."""

    secrets: dict[str, str] = field(default_factory=dict)
    arrivals: list[Arrival] = field(default_factory=list)  # every signed request, in order
    taken: list[dict[str, Any]] = field(default_factory=list)  # answered 2xx, in order
    bad_signatures: int = 0
    fail: int = 0
    fail_if: Callable[[dict[str, Any]], bool] = lambda event: False
    hold: asyncio.Event | None = None
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    def __post_init__(self) -> None:
        self.verify = readme_verify()
        self.app = web.Application()
        self.app.router.add_post("/hook/{account}", self.handle)

    def hook(self, account: str) -> str:
        return f"{self.url}/hook/{account}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        secret = self.secrets.get(request.match_info["account"], "")
        if not self.verify(secret, request.headers.get("Tollgate-Signature", ""), body):
            self.bad_signatures += 1
            return web.Response(status=400, text="bad signature")
        event = orjson.loads(body)
        self.arrivals.append(Arrival(time.monotonic(), event, dict(request.headers)))
        if self.hold is not None and not self.holding.is_set():
            self.holding.set()
            await self.hold.wait()
            return web.Response(status=500, text="held")
        if self.fail > 0 or self.fail_if(event):
            self.fail = max(self.fail - 1, 0)
            return web.Response(status=500, text="not now")
        self.taken.append(event)
        return web.Response(status=204)

    def ids(self, account: str | None = None) -> list[str]:
        """The ids taken (2xx), in arrival order, of one account or all."""
        return [e["id"] for e in self.taken if account is None or e["account"] == account]


async def start_receiver(aiohttp_server: Any) -> Receiver:
    receiver = Receiver()
    server = await aiohttp_server(receiver.app)
    receiver.url = f"http://127.0.0.1:{server.port}"
    return receiver
