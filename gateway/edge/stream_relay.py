"""Relaying one upstream SSE stream to the client, and charging it exactly once.

The stream is charged at its final event (so that the ``: x-usage-cost`` comment goes out just
before it), or, if it never gets there, when it ends any other way: the upstream broke
(``estimated``), the client went away or stopped reading for too long (``partial``: what was
written, less the write that failed), or it ended without its final event (the usage, if it
came, else ``estimated``).

A client going away shows up as any ``ConnectionError`` (reset, broken pipe, or aiohttp's plain
``ConnectionError("Connection lost")`` when the client closes while a write waits for it to
read), or as cancellation. It is the client's business alone: it never reaches the error
middleware, so it cannot be taken for a failure of Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from gateway import errors
from gateway.apis.base import StreamTracker
from gateway.apis.tracking import EventKind, KeptBudget, TrackerMark
from gateway.billing.settler import Call
from gateway.codecs.sse import SSEBufferOverflow, SSEDecoder, comment
from gateway.edge import relay_read
from gateway.upstream.provider import UpstreamResponse
from pricing import format_usd

log = logging.getLogger("gateway.edge.proxy")

# Charges a stream: (call, tracker, usage source) -> the cost charged.
SettleStream = Callable[[Call, StreamTracker, str], Awaitable[int]]
# Journals what a stream has cost so far (Settler.progress).
Progress = Callable[[Call, StreamTracker], None]


class StreamRelay:
    """One stream's relay. ``run`` writes the answer and returns it, charged."""

    def __init__(
        self,
        call: Call,
        upstream: UpstreamResponse,
        *,
        started: float,
        client_wants_usage: bool,
        kept: KeptBudget,
        settle: SettleStream,
        progress: Progress | None = None,
        progress_every: float = 2.0,
    ) -> None:
        self.call = call
        self.upstream = upstream
        self.started = started
        self.strip = not client_wants_usage  # drop the usage chunk the client did not ask for
        self.settle = settle
        self.progress = progress
        self.progress_every = progress_every
        self.progressed = time.monotonic()
        self.decoder = SSEDecoder()
        self.tracker = call.endpoint.new_tracker(kept)
        self.source = "estimated"  # until the stream ends as it should
        self.finished = False  # charged at the final event
        self.writing_since: float | None = None  # read by StalledWrites
        self.stalled = False  # cut by StalledWrites: the client read nothing for too long
        self._transport: Any = None

    def cut(self) -> None:
        """Abort the client's connection: the write it blocks fails like a hang-up."""
        self.stalled = True
        if self._transport is not None:
            self._transport.abort()

    async def run(self, request: web.Request, headers: CIMultiDict[str]) -> web.StreamResponse:
        response = web.StreamResponse(status=self.upstream.status, headers=headers)
        self._transport = request.transport
        try:
            await self._write(response.prepare(request))
            await self._pump(response)
        except (errors.UpstreamError, errors.UpstreamTimeout) as exc:
            log.warning("stream %s broke upstream: %s", self.call.request_id, exc.message)
            self.source = "estimated"
        except SSEBufferOverflow as exc:  # an event that never ends: the stream is unusable
            log.warning("stream %s: the upstream sent %s", self.call.request_id, exc)
            self.source = "estimated"
        except ConnectionError:  # the client went away (the write that failed is cut)
            if not self.finished:
                self.source = "partial"
        except asyncio.CancelledError:
            # The client went away (aiohttp cancels the handler) or the server is shutting
            # down: either way the client got what was written, and that is what it pays for.
            if not self.finished:
                self.source = "partial"
            raise
        finally:
            await self._charge_if_not_yet(response)
        with contextlib.suppress(ConnectionError):
            await self._write(response.write_eof())
        return response

    async def _write(self, writing: Awaitable[Any]) -> None:
        """One write to the client, marked for StalledWrites."""
        self.writing_since = time.monotonic()
        try:
            await writing
        finally:
            self.writing_since = None

    async def _pump(self, response: web.StreamResponse) -> None:
        """Relay every read; then what the decoder still holds, unless the client went."""
        async for chunk in self.upstream.iter_chunks():
            mark = self.tracker.mark()
            out = await self._translate(chunk)
            if out is not None and not await self._deliver(response, out, mark):
                return
            if self.progress is not None and not self.finished:
                now = time.monotonic()
                if now - self.progressed >= self.progress_every:  # a long stream so far
                    self.progressed = now
                    self.progress(self.call, self.tracker)
        mark = self.tracker.mark()
        tail = self.decoder.flush()
        for event in tail:
            self.tracker.feed(event)
        if tail and not await self._deliver(response, [e.raw for e in tail], mark):
            return
        if not self.finished:  # ended without its final event: trust usage if it came
            self.source = "upstream" if self.tracker.usage is not None else "estimated"

    async def _translate(self, chunk: bytes) -> list[bytes] | None:
        """The bytes to send for one read: events rewritten for the client, the usage chunk
        dropped if the client did not ask for it, the cost comment before the final event.
        None when the read completed no event."""
        tracker, endpoint = self.tracker, self.call.endpoint
        plain, events = relay_read.take(self.decoder, tracker, endpoint, chunk, self.strip)
        if not (plain or events):
            return None
        out = [plain] if plain else []
        for event in events:
            kind = tracker.feed(event)
            if kind is EventKind.USAGE_ONLY and self.strip:
                continue
            if kind is EventKind.DONE and not self.finished:
                self.call.upstream_seconds = time.perf_counter() - self.started
                self.source = "upstream" if tracker.usage is not None else "estimated"
                cost = await self.settle(self.call, tracker, self.source)
                out.append(comment(f"x-usage-cost {format_usd(cost)}"))
                self.finished = True
            out.append(endpoint.rewrite_event(event.raw, kind, self.strip))
        return out

    async def _deliver(
        self, response: web.StreamResponse, out: list[bytes], mark: TrackerMark
    ) -> bool:
        """Write one read's bytes; False when the client is gone (what it never got is cut
        from the tracker, so it is not charged)."""
        self.writing_since = time.monotonic()  # inline _write: this is once per read
        try:
            await response.write(b"".join(out))
        except (ConnectionError, asyncio.CancelledError) as exc:
            if not self.finished:  # this batch never reached the client
                self.tracker.truncate(mark)
                self.source = "partial"
            if isinstance(exc, asyncio.CancelledError):
                raise
            return False
        finally:
            self.writing_since = None
        return True

    async def _charge_if_not_yet(self, response: web.StreamResponse) -> None:
        self.tracker.release()
        if self.call.settled:
            return
        self.call.upstream_seconds = time.perf_counter() - self.started
        cost = await self.settle(self.call, self.tracker, self.source)
        if self.source != "partial":
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._write(response.write(comment(f"x-usage-cost {format_usd(cost)}")))
