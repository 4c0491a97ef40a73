"""Cancelling a job, answered once its walk has stopped.

A cancel marks the job and its pending rows at once; a producer still walking the folder
sees it at its next part (``producer.submit``: the part's rows are cancelled with the
job, nothing more is recorded or sent) and then records the walk's end. Answering
before that said ``cancelled`` while the walk added thousands of pending rows, so
:func:`cancel_and_wait` waits for the producer, with a deadline: a producer stuck on a
broker that stopped answering must not hold the answer for ever (its own sends have a
deadline, and ``status`` says ``submitting`` meanwhile).
"""

from __future__ import annotations

import time

from sqlalchemy.orm import Session, sessionmaker

from signdigits.db.jobs import cancel_job, producer_alive
from signdigits.db.models import Job

CANCEL_WAIT_SECONDS = 10.0  # a part of 5,000 images is recorded in well under a second
POLL_SECONDS = 0.05


def cancel_now(sessions: sessionmaker[Session], *, job_id: str) -> int:
    """Mark the job cancelled and its pending rows skipped (``JobFinished`` if it ended);
    how many rows."""
    with sessions.begin() as session:
        return cancel_job(session, job_id=job_id)


def walk_over(sessions: sessionmaker[Session], *, job_id: str, stall_seconds: int) -> bool:
    """Whether no producer is walking the job any more (its walk ended, or it is gone)."""
    with sessions() as session:
        job = session.get_one(Job, job_id)
        return job.submitted_at is not None or not producer_alive(
            job, stall_seconds=stall_seconds)


def cancel_and_wait(sessions: sessionmaker[Session], *, job_id: str, stall_seconds: int,
                    timeout: float = CANCEL_WAIT_SECONDS) -> bool:
    """Cancel, then wait until the walk has stopped; whether it did within ``timeout``."""
    cancel_now(sessions, job_id=job_id)
    deadline = time.monotonic() + timeout
    while not walk_over(sessions, job_id=job_id, stall_seconds=stall_seconds):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True
