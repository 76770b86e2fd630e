"""One webhook delivery: the event posted to a URL, signed; any 2xx answer takes it.

A redirect is not followed (a receiver that moved gets a new ``webhook_url``, not a hop that
would carry the signed body elsewhere); it counts as a failure, as do any other answer, no
answer within the timeout, and a connection that fails.
"""

from __future__ import annotations

import asyncio

import aiohttp

from gateway.events.event import Event, webhook_body
from gateway.events.signature import HEADER, sign

USER_AGENT = "tollgate-webhooks"
MAX_ERROR = 300  # characters of a failure kept for the events listing


class WebhookSender:
    def __init__(self, session: aiohttp.ClientSession, *, timeout: float) -> None:
        self._session = session
        self._timeout = timeout

    async def send(self, url: str, secret: str, event: Event) -> str | None:
        """None once the receiver took the event; else why not, in a phrase."""
        body = webhook_body(event)
        headers = {
            HEADER: sign(secret, body),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Tollgate-Event-Id": event.id,
        }
        try:
            async with asyncio.timeout(self._timeout):
                async with self._session.post(url, data=body, headers=headers,
                                              allow_redirects=False) as answer:  # fmt: skip
                    status = answer.status
        except TimeoutError:
            return f"no answer within {self._timeout:g} s"
        except (aiohttp.ClientError, ValueError, OSError) as exc:
            return f"could not deliver: {type(exc).__name__}: {exc}"[:MAX_ERROR]
        if 200 <= status < 300:
            return None
        return f"the receiver answered {status}"
