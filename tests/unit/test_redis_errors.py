"""One error mapping for both Redis clients: what may be retried and what never will work."""

from __future__ import annotations

import pytest
from redis import exceptions as rx

from gateway.store.redis_errors import StoreRefused, StoreUnavailable, classify

TRANSIENT = [
    rx.ConnectionError("Connection closed by server."),
    rx.TimeoutError("Timeout reading from 127.0.0.1:6379"),
    rx.BusyLoadingError("Redis is loading the dataset in memory"),  # redis-py strips the code
    rx.ReadOnlyError("You can't write against a read only replica."),
    rx.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
    rx.ClusterDownError("The cluster is down"),
    rx.TryAgainError("Multiple keys request during rehashing of slot"),
    rx.MasterDownError("Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
    rx.ClusterError("TTL exhausted."),
    rx.RedisClusterException("Redis Cluster cannot be connected."),
    rx.MaxClientsReachedError("max number of clients reached"),
    # The lean client keeps the reply's code in front of the message:
    rx.ResponseError("LOADING Redis is loading the dataset in memory"),
    rx.ResponseError("READONLY You can't write against a read only replica."),
    rx.ResponseError("BUSY Redis is busy running a script. You can only call SCRIPT KILL"),
    rx.ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's failing"),
    rx.ResponseError("ERR max number of clients reached"),
    # Redis 6.2 wraps what a script met inside it:
    rx.ResponseError(
        "ERR Error running script (call to f_1): @user_script:40: -OOM command "
        "not allowed when used memory > 'maxmemory'."
    ),
    ConnectionRefusedError(111, "Connection refused"),
]
FINAL = [
    rx.ResponseError("ERR settle_v6: malformed arguments"),
    rx.ResponseError(
        "ERR Error running script (call to f_2): @user_script:12: "
        "user_script:12: attempt to compare nil with number"
    ),
    rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    rx.NoPermissionError("this user has no permissions to run the 'evalsha' command"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: f"{type(e).__name__}:{str(e)[:24]}")
def test_worth_a_retry(exc: BaseException) -> None:
    assert isinstance(classify(exc), StoreUnavailable)


@pytest.mark.parametrize("exc", FINAL, ids=lambda e: f"{type(e).__name__}:{str(e)[:24]}")
def test_never_worth_a_retry(exc: BaseException) -> None:
    assert isinstance(classify(exc), StoreRefused)


def test_the_code_is_kept() -> None:
    assert classify(rx.ResponseError("LOADING Redis is loading")).code == "LOADING"
    wrapped = rx.ResponseError("ERR Error running script: -READONLY You can't write")
    assert classify(wrapped).code == "READONLY"
