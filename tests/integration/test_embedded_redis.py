"""The embedded Redis: restarted when it dies, stopped with its gateway however that dies, and
never two servers on one AOF."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as sync_redis

from gateway.store.embedded import EmbeddedRedis
from tests.support.redis_server import pick_binary


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and b"Z"
        not in Path(f"/proc/{pid}/stat").read_bytes()[
            Path(f"/proc/{pid}/stat").read_bytes().rfind(b")") + 2 :
        ][:1]
    )


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def embedded(tmp_path: Path) -> EmbeddedRedis:
    server = EmbeddedRedis(tmp_path / "data", binary=pick_binary())
    yield server  # type: ignore[misc]
    server.stop()


def test_a_server_that_dies_is_restarted_on_the_same_socket_and_aof(
    embedded: EmbeddedRedis,
) -> None:
    url = embedded.start()
    embedded.supervise(interval=0.1)
    client = sync_redis.Redis.from_url(url, decode_responses=True)
    client.set("balance", "42")
    time.sleep(1.2)  # appendfsync everysec
    assert embedded.process is not None
    first = embedded.process.pid
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if client.get("balance") == "42":
                break
        except sync_redis.ConnectionError:
            time.sleep(0.1)
    assert client.get("balance") == "42"
    assert embedded.process.pid != first and embedded.restarts == 1
    client.close()


def test_the_server_stops_when_its_gateway_is_killed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from gateway.store.embedded import EmbeddedRedis\n"
        f"EmbeddedRedis(Path({str(data)!r}), binary={pick_binary()!r}).start()\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert parent.stdout is not None and parent.stdout.readline().strip() == b"up"
    pid = int((data / "redis.pid").read_text())
    assert alive(pid)
    parent.send_signal(signal.SIGKILL)  # no cleanup at all
    parent.wait()
    parent.stdout.close()
    assert wait_gone(pid), "redis-server outlived its gateway"


def test_a_server_left_running_on_the_data_dir_is_stopped_before_a_new_one_starts(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    first = EmbeddedRedis(data, binary=pick_binary())
    url = first.start()
    client = sync_redis.Redis.from_url(url, decode_responses=True)
    client.set("balance", "7")
    client.close()
    assert first.process is not None
    orphan = first.process.pid  # its gateway is gone, say, where no death signal reached it
    second = EmbeddedRedis(data, binary=pick_binary())
    try:
        url = second.start()
        assert not alive(orphan)  # stopped (it flushed its AOF), not left writing beside us
        client = sync_redis.Redis.from_url(url, decode_responses=True)
        assert client.get("balance") == "7"
        client.close()
    finally:
        second.stop()
        first.process.wait()
