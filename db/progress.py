"""How far a job has got: its state and its rows by outcome, from one row per batch.

The counts come from ``batches`` (kept by :func:`db.batches.refresh_batch_counts` in
every transaction that changes an image's status), so a summary costs the same for a
ten-image job as for a million-image one; ``run``'s progress bar, ``status``, the job
pages and the jobs list all ask for it, the first two twice a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from signdigits.db.jobs import producer_alive
from signdigits.db.models import (
    UNREACHABLE_BATCH,
    Batch,
    Image,
    ImageStatus,
    Job,
    JobState,
    as_utc,
    utcnow,
)


@dataclass(frozen=True)
class JobSummary:
    job: Job
    state: JobState
    total: int
    pending: int
    done: int
    errors: int
    cancelled: int
    below_threshold: int
    last_finished: datetime | None
    stalled: bool

    @property
    def finished(self) -> int:
        return self.total - self.pending

    @property
    def rate(self) -> float | None:
        """Images per second from submission to the latest stored row."""
        if not self.last_finished or not self.finished:
            return None
        seconds = (as_utc(self.last_finished) - as_utc(self.job.created_at)).total_seconds()
        return self.finished / seconds if seconds > 0 else None


def summarize_job(session: Session, *, job: Job, stall_seconds: int) -> JobSummary:
    counts = session.execute(
        select(
            func.sum(Batch.images), func.sum(Batch.done), func.sum(Batch.errors),
            func.sum(Batch.cancelled), func.sum(Batch.below_threshold),
            func.max(Batch.last_finished_at),
        ).where(Batch.job_id == job.id)
    ).one()
    # What the walk could not list has rows but no batch: few, and found by the index.
    unreachable = session.execute(
        select(func.count(), func.max(Image.finished_at)).where(
            Image.job_id == job.id, Image.status == ImageStatus.ERROR,
            Image.batch == UNREACHABLE_BATCH)
    ).one()
    return _summary(job, tuple(counts), tuple(unreachable), stall_seconds=stall_seconds)


def _summary(job: Job, counts: tuple, unreachable_rows: tuple, *,
             stall_seconds: int) -> JobSummary:
    """The summary from the batches' sums and the unreachable rows' count and latest time."""
    images, done, errors, cancelled, below, last = counts
    unreachable, unreachable_at = unreachable_rows
    images, done, errors, cancelled, below = (
        int(v or 0) for v in (images, done, errors, cancelled, below))
    pending = images - done - errors - cancelled
    total, errors = images + unreachable, errors + unreachable
    if last is None or (unreachable_at is not None and as_utc(unreachable_at) > as_utc(last)):
        last = unreachable_at
    state = _state(job, total=total, pending=pending, errors=errors,
                   stall_seconds=stall_seconds)
    progress_at = as_utc(last or job.created_at)
    stalled = (
        state in (JobState.QUEUED, JobState.RUNNING)
        and utcnow() - progress_at > timedelta(seconds=stall_seconds)
    )
    return JobSummary(
        job, state, total, pending, done, errors, cancelled, below, last, stalled
    )


def _state(job: Job, *, total: int, pending: int, errors: int,
           stall_seconds: int) -> JobState:
    if job.failure:
        return JobState.FAILED
    walking = job.submitted_at is None and producer_alive(job, stall_seconds=stall_seconds)
    if job.cancelled_at is not None:
        # Cancelled once its walk has stopped (the producer cancels the rows it recorded
        # after the cancel, then stops): until then `done` would come while rows grow.
        return JobState.SUBMITTING if walking else JobState.CANCELLED
    if job.submitted_at is None:  # the walk is not over: at work, or its producer died
        return JobState.SUBMITTING if walking else JobState.SUBMISSION_INTERRUPTED
    if pending == 0:
        return JobState.DONE_WITH_ERRORS if errors else JobState.DONE
    if pending == total:
        return JobState.QUEUED
    return JobState.RUNNING


def summarize_jobs(session: Session, *, jobs: list[Job],
                   stall_seconds: int) -> list[JobSummary]:
    """:func:`summarize_job` of each job, in two queries for all of them.

    The jobs page's one event stream watches every unfinished job it shows: asked one job
    at a time, 20 jobs were 40 queries a second per open page.
    """
    if not jobs:
        return []
    ids = [job.id for job in jobs]
    counts = {row[0]: row[1:] for row in session.execute(
        select(Batch.job_id, func.sum(Batch.images), func.sum(Batch.done),
               func.sum(Batch.errors), func.sum(Batch.cancelled),
               func.sum(Batch.below_threshold), func.max(Batch.last_finished_at))
        .where(Batch.job_id.in_(ids)).group_by(Batch.job_id))}
    unreachable = {row[0]: row[1:] for row in session.execute(
        select(Image.job_id, func.count(), func.max(Image.finished_at))
        .where(Image.job_id.in_(ids), Image.status == ImageStatus.ERROR,
               Image.batch == UNREACHABLE_BATCH).group_by(Image.job_id))}
    return [_summary(job, counts.get(job.id, (None,) * 6),
                     unreachable.get(job.id, (0, None)), stall_seconds=stall_seconds)
            for job in jobs]
