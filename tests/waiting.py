"""The one way a test waits for something it cannot be told about: ask, with a deadline.

Where a process can say when something happened (a task event, a line on a pipe, a
process's exit, a value pushed on a Redis list: :func:`pop_within`), a test waits on
that; where only asking will do (a row, a log line, a web page), it asks with
:func:`wait_until`, never sleeps a guessed time and then checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float, interval: float = 0.2,
               message: str = "", details: Callable[[], str] | None = None) -> T:
    """``predicate()``'s first truthy value, asked every ``interval`` seconds.

    Past ``timeout`` seconds, AssertionError saying what was awaited (``message``) and the
    predicate's last value, then what ``details()`` gives at that moment (a log's tail).
    An exception from ``predicate`` ends the wait at once (e.g. a process that died).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            what = message or getattr(predicate, "__qualname__", repr(predicate))
            more = f"\n{details()}" if details else ""
            raise AssertionError(f"waited {timeout:g} s for {what}; last value: {value!r}{more}")
        time.sleep(min(interval, left))


# One BLPOP blocks at most this long, on a client that reads a reply for that long and a
# margin more. redis-py 8 reads with a 5 s socket timeout by default, and a longer BLPOP
# ended in redis.TimeoutError instead of its answer: `wait_held(timeout=120)` was a 5 s
# wait (2 in 10 runs of test_child_killed_mid_batch_is_redelivered failed so under load),
# and a reply a loaded machine's broker sends a little late is still a reply.
POP_SECONDS = 4
REPLY_SECONDS = POP_SECONDS + 10


def broker_client(url: str):
    """A Redis client for :func:`pop_within` (any BLPOP a test makes)."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=REPLY_SECONDS)


def pop_within(client, key: str, *, timeout: float) -> bytes | None:
    """The first value pushed onto ``key`` within ``timeout`` seconds, or None.

    ``client`` is :func:`broker_client`'s. BLPOPs of at most :data:`POP_SECONDS`, in
    whole seconds: the broker takes a fraction that rounds to 0 ms as 0, block forever.
    """
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        got = client.blpop([key], timeout=max(1, min(int(left), POP_SECONDS)))
        if got:
            return got[1]
    return None
