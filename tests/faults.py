"""Faults for real worker processes, loaded with ``celery worker --include tests.faults``.

Production code has no fault hooks; tests that need a slow or failing batch start a real
worker with this module, which wraps :func:`worker.batch.classify_images`:

- ``SIGNDIGITS_TEST_SLOW_BATCHES="0,3"`` and ``SIGNDIGITS_TEST_SLOW_SECONDS=5``: those
  batches sleep before classifying, so a test can kill or cancel them mid-batch.
- ``SIGNDIGITS_TEST_POISON_BATCHES="1"``: those batches raise every time.
- ``SIGNDIGITS_TEST_KILL_BATCHES="1"``: the pool process running those batches SIGKILLs
  itself, every time (after the attempt is counted, before anything is stored).
"""

from __future__ import annotations

import os
import signal
import time

from signdigits.worker import batch as worker_batch

_original = worker_batch.classify_images


def _batches(name: str) -> set[int]:
    return {int(b) for b in os.environ.get(name, "").split(",") if b.strip()}


def _faulty_classify_images(ctx, claimed, pixels, errors, *, worker):
    batch = claimed.batch
    if batch in _batches("SIGNDIGITS_TEST_SLOW_BATCHES"):
        time.sleep(float(os.environ.get("SIGNDIGITS_TEST_SLOW_SECONDS", "5")))
    if batch in _batches("SIGNDIGITS_TEST_KILL_BATCHES"):
        os.kill(os.getpid(), signal.SIGKILL)
    if batch in _batches("SIGNDIGITS_TEST_POISON_BATCHES"):
        raise RuntimeError(f"poisoned batch {batch} (test fault)")
    return _original(ctx, claimed, pixels, errors, worker=worker)


worker_batch.classify_images = _faulty_classify_images
