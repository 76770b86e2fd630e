"""Waiting for something that happens in the background (a dispatcher, a relay), bounded."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


async def eventually(check: Callable[[], Any], seconds: float = 15.0, why: Any = None) -> None:
    """Wait for ``check()`` (a value or an awaitable) to be true; ``why()`` is shown if never."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"not within {seconds} s: {why() if why else ''}"
        await asyncio.sleep(0.05)
