"""A bare aiohttp pass-through proxy: the ceiling for this stack (no auth, no Redis, no JSON).

It forwards the request body and headers (less hop-by-hop ones) to the upstream and relays
the answer: plain answers whole, streams chunk by chunk as they arrive. Same client session
settings as Tollgate (unlimited pool, no decompression), so the difference to Tollgate is
metering alone.

    python -m bench.passthrough --port 9002 --upstream http://127.0.0.1:9001
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Mapping

import aiohttp
from aiohttp import web

HOP_BY_HOP = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "content-length",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "accept-encoding",
        "content-encoding",
    }
)
SESSION = web.AppKey("session", aiohttp.ClientSession)


def _relayable(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}


def create_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
            auto_decompress=False,
        )
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session_ctx)

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = _relayable(request.headers)
        headers["Accept-Encoding"] = "identity"
        async with request.app[SESSION].post(
            upstream + request.path_qs, data=body, headers=headers
        ) as up:
            out_headers = _relayable(up.headers)
            if not up.headers.get("Content-Type", "").startswith("text/event-stream"):
                return web.Response(status=up.status, body=await up.read(), headers=out_headers)
            response = web.StreamResponse(status=up.status, headers=out_headers)
            await response.prepare(request)
            async for chunk in up.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app.router.add_post("/v1/{tail:.*}", forward)
    return app


def main() -> None:
    p = argparse.ArgumentParser(prog="bench.passthrough", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9002)
    p.add_argument("--upstream", required=True, help="origin, e.g. http://127.0.0.1:9001")
    args = p.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        create_app(args.upstream.rstrip("/")),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
