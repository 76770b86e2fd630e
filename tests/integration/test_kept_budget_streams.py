"""After streams that end every way, the bytes the process's trackers keep unparsed are all
given back: a budget that drifted up would make every later long stream parse for nothing,
one that drifted down would let kept bytes grow without bound. (From session 5's review.)"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from gateway.apis.openai_stream import OpenAIStreamTracker
from gateway.app import PROXY
from tests.integration.conftest import Gateway
from tests.support.fake_upstream import FakeUpstream

BODY = {"model": "gpt-4o-mini", "stream": True, "max_tokens": 200,
        "messages": [{"role": "user", "content": "tell me a long story " * 20}]}  # fmt: skip


async def stream(gw: Gateway, key: str, leave_after: int | None) -> None:
    """One stream, read whole, or left after ``leave_after`` bytes."""
    async with gw.http.post(gw.url + "/v1/chat/completions", json=BODY,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        assert r.status == 200
        if leave_after is None:
            await r.read()
            return
        got = 0
        while got < leave_after:
            got += len(await r.content.read(leave_after))


@pytest.mark.parametrize("ending", ["done", "dropped", "runaway", "no_usage", "client_left"])
async def test_the_kept_bytes_return_to_zero_however_a_stream_ends(
    gateway: Gateway, upstream: FakeUpstream, ending: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    peak = 0
    resize = OpenAIStreamTracker._resize

    def watched(self: OpenAIStreamTracker, size: int) -> None:
        nonlocal peak
        resize(self, size)
        if self.budget is not None:
            peak = max(peak, self.budget.used)

    monkeypatch.setattr(OpenAIStreamTracker, "_resize", watched)
    _, key = await gateway.account()
    if ending == "dropped":
        upstream.drop_after = 3
    elif ending == "runaway":
        upstream.runaway_after = 3
    elif ending == "no_usage":
        upstream.omit_usage = True
    elif ending == "client_left":
        upstream.chunk_delay = 0.01
    for _ in range(3):
        try:
            await stream(gateway, key, 1500 if ending == "client_left" else None)
        except aiohttp.ClientPayloadError:
            assert ending in ("dropped", "runaway")  # the upstream broke off mid-stream
    budget: Any = gateway.app[PROXY]._kept
    for _ in range(200):  # a stream the client left ends in the gateway a little later
        if budget.used == 0:
            break
        await asyncio.sleep(0.02)
    assert budget.used == 0
    assert peak > 0  # something was kept along the way
