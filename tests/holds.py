"""The test's side of the held batches of :mod:`tests.faults`: see when one is held, let
it go.

A worker started with ``SIGNDIGITS_TEST_HOLD_BATCHES`` stops each of those batches once
it is claimed (its attempt counted, its rows still pending), pushes the pid of the process
holding it onto ``signdigits-test-held:<job>:<batch>`` and waits on
``signdigits-test-release:<job>:<batch>`` (BLPOP), both on the worker's broker. So a test
waits for the moment it needs (a batch in flight) instead of guessing how long a batch
takes, and the batch goes on when the test says so, not after a fixed time.
"""

from __future__ import annotations

from tests.waiting import broker_client, pop_within

# A held batch that nobody releases fails (the test then fails) rather than go on.
HOLD_LIMIT_SECONDS = 300.0


def held_key(job_id: str, batch: int) -> str:
    return f"signdigits-test-held:{job_id}:{batch}"


def release_key(job_id: str, batch: int) -> str:
    return f"signdigits-test-release:{job_id}:{batch}"


class BatchHolds:
    """Held batches on the broker at ``broker_url`` (the workers' own)."""

    def __init__(self, broker_url: str) -> None:
        self.client = broker_client(broker_url)

    def wait_held(self, job_id: str, batch: int, timeout: float = 120) -> int:
        """Until a worker holds the batch (each pass through it pushes once); the pid of
        the pool process holding it."""
        got = pop_within(self.client, held_key(job_id, batch), timeout=timeout)
        assert got is not None, f"batch {batch} of job {job_id} was not held within {timeout:g} s"
        return int(got)

    def release(self, job_id: str, batch: int, times: int = 1) -> None:
        """Let the batch go on, ``times`` holds of it: one now, or kept for those to come."""
        self.client.rpush(release_key(job_id, batch), *["go"] * times)
