"""What a web server starting again, or an upload that failed, asks of the jobs table:
which folders jobs own, which walks never ended, and removing a job no client knows.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from signdigits.db.deleted import delete_job_rows
from signdigits.db.jobs import cancel_job
from signdigits.db.models import Batch, Job

_IN_CHUNK = 500  # roots per IN list: far under SQLite's and PostgreSQL's parameter limits


def owned_roots(session: Session, *, roots: Sequence[str]) -> set[str]:
    """Those of ``roots`` that some job has as its folder."""
    owned: set[str] = set()
    for start in range(0, len(roots), _IN_CHUNK):
        chunk = list(roots[start:start + _IN_CHUNK])
        owned.update(session.scalars(select(Job.root).where(Job.root.in_(chunk))))
    return owned


def unfinished_walks(session: Session) -> list[Job]:
    """Jobs whose walk never recorded its end, neither cancelled nor failed, oldest
    first: walked now by a live producer, or interrupted (its producer gone)."""
    return list(session.scalars(
        select(Job).where(Job.submitted_at.is_(None), Job.cancelled_at.is_(None),
                          Job.failure.is_(None)).order_by(Job.created_at)))


def discard_job(session: Session, *, job_id: str, reason: str) -> bool:
    """Remove a job whose submission failed before its client learned its id; whether
    it was deleted.

    Deleted (its rows with it) if none of its batches was sent. Otherwise a worker may
    hold a message naming it, and a job a worker cannot find is retried for an hour as
    another database's: so it stays, cancelled (its batches are skipped), failed with
    ``reason``.
    """
    sent = session.scalar(select(Batch.batch).where(
        Batch.job_id == job_id, Batch.enqueued_at.is_not(None)).limit(1))
    if sent is None:
        return delete_job_rows(session, job_id=job_id)  # counted for /metrics
    cancel_job(session, job_id=job_id)
    session.get_one(Job, job_id).failure = reason
    return False
