"""What a Redis failure means for the caller, decided in one place for both clients.

::

    StoreError
    ├── StoreUnavailable   try again later: nothing was applied, or the call is idempotent
    │                      (connection lost or refused, no reply in time, and the error replies
    │                      of a Redis that is starting, failing over or full: LOADING,
    │                      READONLY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN, BUSY, OOM, MISCONF,
    │                      NOREPLICAS)
    └── StoreRefused       final: the command or script itself was refused (a bug, bad
                           arguments, permissions); retrying the same call cannot succeed

The money path needs the difference: a settle refused for good is recorded and dropped, a settle
that met an unavailable Redis is kept in the journal and applied when Redis is back. Getting
it wrong either way loses a charge. redis-py raises its own classes (and strips the code from
some messages); the lean client raises redis-py's ``ResponseError`` with the code in front.
``classify`` maps both.
"""

from __future__ import annotations

import asyncio
import re

from redis import exceptions as rx

# Error reply codes (the first word of a Redis error reply) that a later retry can get past.
TRANSIENT_CODES = frozenset({
    "LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "OOM", "MISCONF",
    "NOREPLICAS", "MOVED", "ASK",
})  # fmt: skip
# redis-py's classes for those codes (the code is no longer in their message).
_TRANSIENT_CLASSES: tuple[type[BaseException], ...] = (
    rx.ConnectionError,  # BusyLoadingError is one
    rx.TimeoutError,
    rx.ReadOnlyError,
    rx.OutOfMemoryError,
    rx.TryAgainError,
    rx.ClusterDownError,
    rx.MasterDownError,
    rx.MovedError,
    rx.AskError,
    rx.ClusterError,  # "TTL exhausted": the cluster kept redirecting
    rx.RedisClusterException,  # no node reachable, a slot not covered
    OSError,
    TimeoutError,
)
# Replies that are transient without a code of their own (redis-py: MaxClientsReachedError).
_TRANSIENT_TEXT = ("max number of clients reached",)
# Redis 6.2 reports an error met inside a script as "ERR Error running script ...: -OOM ...":
# the code that matters is the inner one.
_INNER_CODE = re.compile(r"-([A-Z]{3,}) ")


class StoreError(Exception):
    """A Redis call failed; ``code`` is the reply's code word when Redis sent one."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class StoreUnavailable(StoreError):
    """Redis could not take the call now; the same call may succeed later."""


class StoreRefused(StoreError):
    """Redis refused the call itself; repeating it cannot succeed."""


def reply_code(message: str) -> str:
    """The code word of an error reply (``"LOADING Redis is loading..."`` -> ``"LOADING"``)."""
    word = message.split(" ", 1)[0]
    return word if word.isupper() and word.isalpha() else ""


def classify(exc: BaseException) -> StoreError:
    """The ``StoreError`` that ``exc`` (from either client, or the socket) stands for."""
    if isinstance(exc, StoreError):
        return exc
    message = str(exc) or type(exc).__name__
    code = reply_code(message)
    inner = [c for c in _INNER_CODE.findall(message) if c in TRANSIENT_CODES]
    if inner:
        code = inner[0]
    if (isinstance(exc, _TRANSIENT_CLASSES) or code in TRANSIENT_CODES
            or any(text in message for text in _TRANSIENT_TEXT)):  # fmt: skip
        return StoreUnavailable(message, code or type(exc).__name__)
    return StoreRefused(message, code)


def raise_if_cancelling(exc: BaseException | None = None) -> None:
    """For a background loop, after each round and in its broad ``except``: if its task is
    being cancelled, end it. A cancellation that lands inside a redis-py command can come back
    as an error of redis-py's own, or not at all (the client cleans up and returns); the loop
    would then sleep on with its cancellation consumed, and shutdown wait for it in vain."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc
