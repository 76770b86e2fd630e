"""The HTTP server the CLI runs: aiohttp's, with the answers it makes by itself made ours.

aiohttp answers a request it cannot parse (a bad request line, headers over the size limits)
before any handler or middleware runs, with a plain-text body, and logs the parser's error,
which quotes the raw bytes: the customer's key included. Here those answers are OpenAI-shaped
JSON with an ``X-Request-Id`` like every other error, and the log line names the problem, not
the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_runner import GracefulExit

from gateway import errors
from gateway.billing.records import new_request_id
from gateway.edge.httpjson import json_response

log = logging.getLogger(__name__)


def error_answer(status: int, message: str) -> web.Response:
    """The answer to a request the HTTP parser refused (``status`` 4xx, or 500)."""
    error = errors.GatewayError(message)
    error.status = status
    if status < 500:
        error.type, error.code = "invalid_request_error", "invalid_request"
        if status == 431 or status == 413:
            error.code = "request_too_large"
    return render(error, new_request_id())


def render(error: errors.GatewayError, request_id: str) -> web.Response:
    """Every error answer: OpenAI-shaped, with the request id in ``X-Request-Id`` and at the
    end of its message, so that a customer who pastes the message to support pastes the id."""
    body = error.body()
    body["error"]["message"] = f"{error.message} Request id: {request_id}"  # type: ignore[index]
    headers = {**error.headers, "X-Request-Id": request_id}
    response = json_response(body, status=error.status, headers=headers)
    if error.closes:
        response.force_close()
    return response


def with_request_id(body: bytes, request_id: str) -> bytes:
    """A provider's error answer, relayed, with the request id at the end of its message (the
    OpenAI and Anthropic shapes both keep it in ``error.message``); other bodies unchanged."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return body
    error["message"] = f"{error['message']} Request id: {request_id}"
    return orjson.dumps(document)


class _JsonErrorsHandler(RequestHandler):
    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # The parser's message quotes the raw request (keys included): log its kind only.
        log.warning("refused an unparsable request from %s: %d %s", request.remote, status,
                    type(exc).__name__ if exc is not None else "error")  # fmt: skip
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was already under way")
        if isinstance(exc, LineTooLong) or status in (413, 431):
            text = "The request line or its headers are too large."
        elif status < 500:
            text = "The request could not be read as HTTP."
        else:
            text = "The gateway failed unexpectedly; nothing was charged."
        response = error_answer(status, text)
        response.force_close()
        return response


class _JsonErrorsServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorsHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorsRunner(web.AppRunner):
    """An ``AppRunner`` whose connections answer unparsable requests with JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # Only __call__ differs and the subclass adds no state, so the server aiohttp built
        # (with everything the app configured) becomes one of ours.
        server.__class__ = _JsonErrorsServer
        return server


def run(app: Awaitable[web.Application], *, host: str, port: int, reuse_port: bool,
        shutdown_timeout: float) -> None:  # fmt: skip
    """Serve until SIGINT or SIGTERM (what ``web.run_app`` does, with our runner)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runner: JsonErrorsRunner | None = None

    async def start() -> None:
        nonlocal runner
        runner = JsonErrorsRunner(await app, handle_signals=True, access_log=None,
                                  shutdown_timeout=shutdown_timeout)  # fmt: skip
        await runner.setup()
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()

    try:
        loop.run_until_complete(start())
        loop.run_forever()
    except (GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if runner is not None:
            loop.run_until_complete(runner.cleanup())
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
