"""A lean HTTP/1.1 client for the forward: pooled keep-alive connections, one parser in C.

aiohttp's ``ClientSession`` costs about as much CPU per request as all of the metering (URL
objects, request and response objects, tracing hooks, cookie jar, timers). The forward needs
much less: POST a body that is already bytes to one of a few origins, and hand back the status,
the headers and the body, whole or as it arrives. This package does only that, on asyncio
protocols with ``httptools`` (llhttp, the parser Node.js uses) for the response.

Timeouts, like aiohttp's: ``connect`` bounds waiting for a pool slot plus opening the connection
(TLS included); ``read`` is the longest silence while waiting for the answer; ``first_byte`` bounds
the wait for the answer's headers; ``total`` bounds the whole exchange, body included. A pooled
connection that the server closed is noticed before it is used; a request is never sent twice.

Three modules: ``wire`` (errors, origins, timeouts, the request head), ``answer`` (the
protocol on one connection and the ``Response`` its parser fills) and ``pool`` (connections
per origin, and the request).
"""

from gateway.upstream.http1.answer import MAX_HEADER_BYTES, MAX_HEADERS, PAUSE_AT, Response
from gateway.upstream.http1.pool import KEEPALIVE, Pool
from gateway.upstream.http1.wire import ClientTimeout, ConnectionBroken, Origin, Timeouts

__all__ = [
    "KEEPALIVE",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "PAUSE_AT",
    "ClientTimeout",
    "ConnectionBroken",
    "Origin",
    "Pool",
    "Response",
    "Timeouts",
]
