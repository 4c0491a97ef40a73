"""What the workers' reconciler reads and writes: the batches it may send again.

A batch may be sent again when its job is stalled as ``status`` says it (the job's rows
have not moved for ``SIGNDIGITS_STALL_SECONDS``: :func:`db.progress.summarize_job`), it
still has pending images, and it was last sent (by the producer, ``resume`` or the
reconciler) at least that long ago. Whether the broker still holds its message is the
caller's question (broker layer); this module only knows the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from signdigits.db.models import BATCHES, Batch, Image, ImageStatus, Job, as_utc, utcnow
from signdigits.db.progress import summarize_job


@dataclass(frozen=True)
class StalledJob:
    job_id: str
    inline: bool  # its messages carried the images' bytes: only its producer can resend
    root: str
    batches: list[int]  # pending, and last sent a whole stall period ago or more


def stalled_batches(session: Session, *, stall_seconds: int,
                    now: datetime | None = None) -> list[StalledJob]:
    """The submitted, unfinished jobs that are stalled, each with the batches that may be
    sent again now; jobs with none of those are left out.

    One index probe per job finds the unfinished ones (jobs still being submitted are the
    producer's own: ``resume`` finishes them); each of those costs a summary and a read of
    its ``batches`` rows.
    """
    now = now or utcnow()
    pending = select(Image.id).where(Image.job_id == Job.id,
                                     Image.status == ImageStatus.PENDING).exists()
    jobs = session.scalars(
        select(Job).where(Job.submitted_at.is_not(None), Job.cancelled_at.is_(None),
                          Job.failure.is_(None), pending)
        .order_by(Job.created_at)
    ).all()
    found = []
    cutoff = now - timedelta(seconds=stall_seconds)
    for job in jobs:
        if not summarize_job(session, job=job, stall_seconds=stall_seconds).stalled:
            continue
        rows = session.execute(
            select(Batch.batch, Batch.enqueued_at, Batch.resent_at)
            .where(Batch.job_id == job.id,
                   Batch.images > Batch.done + Batch.errors + Batch.cancelled)
            .order_by(Batch.batch)
        )
        # Compared here, not in SQL: SQLite keeps these as text without their zone.
        due = [batch for batch, enqueued, resent in rows
               if (last := _last_sent(enqueued, resent)) is None or last <= cutoff]
        if due:
            found.append(StalledJob(job.id, job.inline, job.root, due))
    return found


def _last_sent(enqueued: datetime | None, resent: datetime | None) -> datetime | None:
    moments = [as_utc(m) for m in (enqueued, resent) if m is not None]
    return max(moments) if moments else None


def mark_resent(session: Session, *, job_id: str, batches: list[int]) -> None:
    """Record that these batches were sent again now (and so count as sent)."""
    if batches:
        now = utcnow()
        session.execute(
            update(BATCHES)
            .where(BATCHES.c.job_id == job_id, BATCHES.c.batch.in_(batches))
            .values(enqueued_at=now, resent_at=now)
        )
