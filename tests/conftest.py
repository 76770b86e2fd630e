from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.store.clients import make_redis
from tests.support.ledger import assert_ledger_identity
from tests.support.redis_cluster import RedisClusterServers, cluster_available
from tests.support.redis_server import RedisServer

CLUSTER_TOO = "redis_cluster_too"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{CLUSTER_TOO}: run against a 3-master Redis Cluster and a TLS-only Redis too"
    )
    config.addinivalue_line("markers", "slow: takes tens of seconds (a fresh clone, a fresh venv)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests in modules marked ``redis_cluster_too`` run on one Redis and on a Redis Cluster."""
    if "redis_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        CLUSTER_TOO
    ):
        metafunc.parametrize("redis_backend", ["single", "cluster", "tls"], indirect=True)


@dataclass(frozen=True)
class RedisTarget:
    url: str
    cluster: bool


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisClusterServers]:
    if not cluster_available():
        if os.environ.get("CI"):
            pytest.fail("redis-cli is missing: scripts/test.sh installs Debian's redis-tools")
        pytest.skip("redis-cli not installed: cannot create a Redis Cluster")
    cluster = RedisClusterServers(Path(tmp_path_factory.mktemp("cluster")))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis that speaks TLS only, through redis-py (the lean client is for plain TCP)."""
    server = RedisServer(Path(tmp_path_factory.mktemp("redis-tls")), tls=True)
    try:
        server.start()
    except RuntimeError:
        if os.environ.get("CI"):
            pytest.fail("this redis-server has no TLS: scripts/test.sh installs Debian's")
        pytest.skip("this redis-server was built without TLS")
    yield server
    server.stop()


@pytest.fixture
def redis_backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "single")


@pytest.fixture
def redis_target(request: pytest.FixtureRequest, redis_backend: str) -> RedisTarget:
    if redis_backend == "cluster":
        cluster = request.getfixturevalue("redis_cluster_servers")
        return RedisTarget(cluster.url, True)
    if redis_backend == "tls":
        return RedisTarget(request.getfixturevalue("redis_tls_server").url, False)
    return RedisTarget(request.getfixturevalue("redis_server").url, False)


@pytest.fixture
async def redis(redis_target: RedisTarget) -> AsyncIterator[Any]:
    """A clean Redis (or Cluster) for each test; the ledger identity is asserted at the end."""
    client = make_redis(redis_target.url, cluster=redis_target.cluster)
    if redis_target.cluster:
        await client.flushall(target_nodes=client.PRIMARIES)
    else:
        await client.flushall()
    yield client
    await assert_ledger_identity(client)
    await client.aclose()
