"""The one way a test waits for something it cannot be told about: ask, with a deadline.

Where a process can say when something happened (a task event, a line on a pipe, a
process's exit), a test waits on that; where only asking will do (a row, a log line, a
web page), it asks with :func:`wait_until`, never sleeps a guessed time and then checks.
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
