"""Faults for real worker processes, loaded with ``celery worker --include tests.faults``.

Production code has no fault hooks; tests that need a held or failing batch start a real
worker with this module, which wraps :func:`worker.batch.classify_hands`:

- ``SIGNDIGITS_TEST_HOLD_BATCHES="0,3"``: each pass through those batches stops before
  the model runs, once claimed, until the test releases it (:mod:`tests.holds`): so a
  test can kill, cancel or cut off a batch in flight, and knows when it is. Unreleased
  for 300 s, the batch raises instead (a test that forgot fails; it does not go on).
- ``SIGNDIGITS_TEST_POISON_BATCHES="1"``: those batches raise every time.
- ``SIGNDIGITS_TEST_KILL_BATCHES="1"``: the pool process running those batches SIGKILLs
  itself, every time (after the attempt is counted, before anything is stored).
"""

from __future__ import annotations

import os
import signal
import time

import redis

from signdigits.worker import batch as worker_batch
from tests.holds import HOLD_LIMIT_SECONDS, held_key, release_key
from tests.waiting import broker_client, pop_within

_original = worker_batch.classify_hands


def _batches(name: str) -> set[int]:
    return {int(b) for b in os.environ.get(name, "").split(",") if b.strip()}


def _hold(job_id: str, batch: int) -> None:
    """Say the batch is held, then wait for the test's release, on the worker's broker."""
    client = broker_client(os.environ["SIGNDIGITS_BROKER_URL"])
    client.rpush(held_key(job_id, batch), os.getpid())
    deadline = time.monotonic() + HOLD_LIMIT_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        try:
            if pop_within(client, release_key(job_id, batch), timeout=left) is not None:
                return
        except redis.ConnectionError:  # the test restarts the broker: ask the new one
            time.sleep(0.2)
    raise RuntimeError(f"batch {batch} held {HOLD_LIMIT_SECONDS:g} s, never released "
                       "(test fault)")


def _faulty_classify_hands(ctx, claimed, part, **kwargs):
    batch = claimed.batch
    if batch in _batches("SIGNDIGITS_TEST_HOLD_BATCHES") and claimed.images[0].id in part:
        _hold(claimed.job.id, batch)  # once per pass: before the batch's first part
    if batch in _batches("SIGNDIGITS_TEST_KILL_BATCHES"):
        os.kill(os.getpid(), signal.SIGKILL)
    if batch in _batches("SIGNDIGITS_TEST_POISON_BATCHES"):
        raise RuntimeError(f"poisoned batch {batch} (test fault)")
    return _original(ctx, claimed, part, **kwargs)


worker_batch.classify_hands = _faulty_classify_hands
