"""The tests' own waits on the broker (:mod:`tests.holds`, :func:`tests.waiting.pop_within`)
keep the deadline they are given, whatever the Redis client's read timeout."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests.holds import BatchHolds, held_key
from tests.waiting import POP_SECONDS


@pytest.fixture
def holds(redis_url) -> BatchHolds:
    return BatchHolds(redis_url)  # the URL's own database: no worker reads these keys


def test_a_hold_that_comes_late_is_seen(holds):
    """Pushed after redis-py's default 5 s read timeout (and after one BLPOP's wait): a
    single BLPOP of the whole timeout was cut short there by redis.TimeoutError, which
    failed test_child_killed_mid_batch_is_redelivered when a loaded machine took longer
    than 5 s to bring the killed process's batch back."""
    job_id = uuid.uuid4().hex
    late = 5 + 1.5  # past the default read timeout, and past one BLPOP (POP_SECONDS)
    assert late > POP_SECONDS
    pusher = threading.Timer(late, holds.client.rpush, (held_key(job_id, 1), 4242))
    started = time.monotonic()
    pusher.start()
    try:
        assert holds.wait_held(job_id, 1, timeout=60) == 4242
    finally:
        pusher.cancel()
    assert time.monotonic() - started >= late


def test_a_hold_that_never_comes_fails_after_its_timeout(holds):
    job_id = uuid.uuid4().hex
    started = time.monotonic()
    with pytest.raises(AssertionError, match="was not held within 2 s"):
        holds.wait_held(job_id, 1, timeout=2)
    assert 2 <= time.monotonic() - started < 2 + POP_SECONDS
