"""``tollgate`` command line: ``tollgate serve`` runs the gateway; ``tollgate config check``,
``tollgate pricing check``."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import hashlib
import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.app import create_app
from gateway.billing.lua_scripts import all_sources
from gateway.cli import operator
from gateway.cli.config_check import (
    add_config_parser,
    check_files,
    provider_warnings,
    run_config,
)
from gateway.cli.pricing import add_pricing_parser, run_pricing
from gateway.edge import http_server
from gateway.observability.logs import configure_logging
from gateway.settings import ConfigError, Settings, load_settings
from gateway.store.clients import make_redis
from gateway.store.embedded import EmbeddedRedis
from gateway.store.fast_client import FastScripts
from gateway.store.keys import admin_token_hash

log = logging.getLogger("tollgate")
DEFAULT_CONFIG = "config/gateway.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tollgate", description="Metering gateway for AI APIs.",
        epilog="Operator commands (clients of the admin API): " + ", ".join(operator.COMMANDS)
        + "; e.g. tollgate accounts --help.")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", default=DEFAULT_CONFIG, help="gateway YAML file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    serve.add_argument("--data-dir", default=None, help="overrides data_dir from the config")
    add_config_parser(sub, DEFAULT_CONFIG)
    add_pricing_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in operator.COMMANDS:  # clients of the admin API (gateway.cli.operator)
        return operator.run(argv)
    args = build_parser().parse_args(argv)
    if args.command == "pricing":
        return run_pricing(args)
    if args.command == "config":
        return run_config(args, env)
    env = dict(os.environ if env is None else env)
    try:
        settings = load_settings(args.config, env)
    except ConfigError as exc:
        problems = str(exc).splitlines()
    else:
        if args.data_dir:
            settings = settings.with_overrides(data_dir=Path(args.data_dir))
        _, problems = check_files(settings)  # `config check`'s checks, before any process starts
    if problems:
        for line in problems:
            print(f"tollgate: {line}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("tollgate: --workers must be at least 1", file=sys.stderr)
        return 2
    listener = configure_logging(env.get("TOLLGATE_LOG_LEVEL", "INFO"), settings.log_format,
                                 settings.secrets())  # fmt: skip
    # here, before workers start: once, not per worker
    for line in provider_warnings(settings):
        log.warning("%s", line)
    try:
        return serve(settings, host=args.host, port=args.port, workers=args.workers)
    finally:
        listener.stop()


def serve(settings: Settings, *, host: str, port: int, workers: int) -> int:
    embedded: EmbeddedRedis | None = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        settings = settings.with_overrides(redis_url=embedded.start())
        embedded.supervise()
        log.info("embedded redis-server (%s) with AOF in %s", embedded.binary, settings.data_dir)
    try:
        token_sha = asyncio.run(_admin_token(settings))
        print(
            f"Tollgate listening on http://{host}:{port} ({workers} worker(s)); "
            f"pricing {settings.pricing_file}",
            flush=True,
        )
        if workers == 1:
            _run_worker(settings, host, port, token_sha, reuse_port=False)
        else:
            # Workers publish their metrics here so any worker's /metrics shows them all.
            metrics_dir = settings.data_dir / f"metrics-{os.getpid()}"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            settings = settings.with_overrides(metrics_dir=metrics_dir)
            ctx = multiprocessing.get_context("spawn")
            procs = [
                ctx.Process(target=_run_worker, args=(settings, host, port, token_sha, True))
                for _ in range(workers)
            ]
            for p in procs:
                p.start()

            def forward(signum: int, _frame: object) -> None:
                for p in procs:  # each worker shuts down gracefully on SIGTERM
                    if p.is_alive() and p.pid is not None:
                        os.kill(p.pid, signal.SIGTERM)

            signal.signal(signal.SIGTERM, forward)
            signal.signal(signal.SIGINT, forward)
            try:
                for p in procs:
                    p.join()
            finally:
                for p in procs:  # a worker that died first must not leave others running
                    if p.is_alive():
                        p.terminate()
                        p.join()
                shutil.rmtree(metrics_dir, ignore_errors=True)
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def redis_client(settings: Settings) -> Any:
    assert settings.redis_url is not None
    return make_redis(settings.redis_url, cluster=settings.redis_cluster,
                      timeout=settings.redis_timeout)  # fmt: skip


async def _admin_token(settings: Settings) -> str:
    """SHA-256 of the configured admin tokens (comma-separated), or "" after making (and
    showing) one the first time: generated and rotated tokens are read from Redis."""
    if settings.admin_token:  # several, comma-separated, while clients move to a new one
        tokens = [t.strip() for t in settings.admin_token.split(",") if t.strip()]
        return ",".join(hashlib.sha256(t.encode()).hexdigest() for t in tokens)
    assert settings.redis_url is not None
    client = redis_client(settings)
    try:
        token = "tga-" + secrets.token_urlsafe(24)
        digest = hashlib.sha256(token.encode()).hexdigest()
        if await client.set(admin_token_hash(), digest, nx=True):
            saved = settings.data_dir / "admin_token"
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            saved.write_text(token + "\n")
            saved.chmod(0o600)
            print(f"Admin token (shown once, also saved to {saved}): {token}", flush=True)
            return ""  # none configured: the gateway reads the generated (and rotated) ones
        print(
            "Admin token: generated on first start (see admin_token in the data directory, "
            "or set TOLLGATE_ADMIN_TOKEN).",
            flush=True,
        )
        return ""
    finally:
        await client.aclose()


async def _freeze_heap(_: web.Application) -> None:
    """After start-up (tokenizer loaded), move every object into the collector's permanent
    generation: a full collection would otherwise walk tiktoken's large tables, a pause of
    tens of milliseconds, whenever one is due under load."""
    gc.collect()
    gc.freeze()


def _run_worker(settings: Settings, host: str, port: int, token_sha: str, reuse_port: bool) -> None:
    if reuse_port:  # a spawned worker: its own process, its own log thread
        listener = configure_logging(os.environ.get("TOLLGATE_LOG_LEVEL", "INFO"),
                                     settings.log_format, settings.secrets())  # fmt: skip
        atexit.register(listener.stop)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def make_app() -> web.Application:
        client = redis_client(settings)
        assert settings.redis_url is not None
        fast = None
        if not settings.redis_cluster and FastScripts.supports(settings.redis_url):
            fast = FastScripts(settings.redis_url, all_sources(), timeout=settings.redis_timeout)
        app = create_app(settings, redis=client, admin_token_sha256=token_sha, scripts=fast)

        async def close_redis(_: web.Application) -> None:
            if fast is not None:
                await fast.aclose()
            await client.aclose()

        app.on_cleanup.append(close_redis)
        app.on_startup.append(_freeze_heap)
        return app

    http_server.run(make_app(), host=host, port=port, reuse_port=reuse_port,
                    shutdown_timeout=settings.shutdown_timeout)  # fmt: skip
