"""How far a job has got: its state and its rows by outcome, from one row per batch.

The counts come from ``batches`` (kept by :func:`db.batches.refresh_batch_counts` in
every transaction that changes an image's status), so a summary costs the same for a
ten-image job as for a million-image one; ``run``'s progress bar, ``status``, the job
pages and the jobs list all ask for it, the first two twice a second.
"""

from __future__ import annotations

import dataclasses
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
    last_finished: datetime | None  # the latest row a worker read (its batch's finish)
    stalled: bool
    # The latest row a worker read (done or error): a cancel marks every pending row
    # finished at once, so a cancelled job's rate stops here. Only set when some are.
    last_worked: datetime | None = None
    # Time inside the job's span when no batch finished for over SIGNDIGITS_STALL_SECONDS
    # (workers stopped, the job interrupted until `resume`): not working time.
    idle_seconds: float = 0.0
    # Error rows recorded with the job, not read by a worker (what the walk could not
    # list, an upload's image over the per-file cap): a rate counts workers' reading
    # only (one such row had made a job 923 images/s before any worker started).
    unreachable: int = 0

    @property
    def finished(self) -> int:
        return self.total - self.pending

    @property
    def rate(self) -> float | None:
        """Images per second read, from submission to the latest row read, less the time
        nothing was read (an interrupted job's hour had made it 0.3 a second); the rows a
        cancel marked are not counted (they gave a cancelled job thousands a second)."""
        read = (self.done + self.errors if self.cancelled else self.finished) - self.unreachable
        last = _until(self)
        if not last or not read:
            return None
        seconds = (as_utc(last) - as_utc(self.job.created_at)).total_seconds()
        seconds -= self.idle_seconds
        return read / seconds if seconds > 0 else None


def idle_seconds(start: datetime, finishes: list[datetime], *, until: datetime,
                 stall_seconds: float) -> float:
    """Time no worker was reading the job, between ``start`` and ``until``: each gap
    between batch finishes (in order) longer than ``stall_seconds``, less the time a batch
    takes (the job's other gaps, on average), since the batch that ended the gap was read
    in it. A batch takes seconds, so a longer gap is an outage, not work."""
    gaps, previous = [], as_utc(start)
    for finish in finishes:
        finish = as_utc(finish)
        if finish > as_utc(until):
            break
        gaps.append((finish - previous).total_seconds())
        previous = max(previous, finish)
    working = [gap for gap in gaps if gap <= stall_seconds]
    batch = sum(working) / len(working) if working else 0.0
    return sum(gap - batch for gap in gaps if gap > stall_seconds)


def _with_idle(session: Session, summaries: list[JobSummary], *,
               stall_seconds: float) -> list[JobSummary]:
    """``summaries`` with their idle seconds, from their batches' finish times."""
    # Only a job whose span is longer than the stall time can hold an idle gap: the
    # batches of the others (every short job, `run`'s bar twice a second) are not read.
    wanted = {s.job.id for s in summaries if (until := _until(s)) is not None
              and (as_utc(until) - as_utc(s.job.created_at)).total_seconds() > stall_seconds}
    if not wanted:
        return summaries
    finishes: dict[str, list[datetime]] = {job_id: [] for job_id in wanted}
    for job_id, finished in session.execute(
            select(Batch.job_id, Batch.last_finished_at)
            .where(Batch.job_id.in_(sorted(wanted)), Batch.last_finished_at.is_not(None))
            .order_by(Batch.job_id, Batch.last_finished_at)):
        if finished is not None:  # never: the query leaves them out
            finishes[job_id].append(finished)
    return [dataclasses.replace(s, idle_seconds=idle_seconds(
                s.job.created_at, finishes[s.job.id], until=_until(s) or s.job.created_at,
                stall_seconds=stall_seconds)) if s.job.id in wanted else s
            for s in summaries]


def _until(summary: JobSummary) -> datetime | None:
    """The end of the span a rate is read over: the last row a worker read (a cancel's
    marks not)."""
    return summary.last_worked if summary.cancelled else summary.last_finished


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
    summary = _summary(job, tuple(counts), tuple(unreachable), stall_seconds=stall_seconds)
    if summary.cancelled:
        summary = dataclasses.replace(summary,
                                      last_worked=_last_worked(session, [job.id])[job.id])
    return _with_idle(session, [summary], stall_seconds=stall_seconds)[0]


def _last_worked(session: Session, job_ids: list[str]) -> dict[str, datetime | None]:
    """Each job's latest row a worker read (done or error), for jobs with cancelled rows."""
    # Not dict(result): a Result has keys(), so dict() would take it for a mapping.
    found = {job_id: last for job_id, last in session.execute(
        select(Image.job_id, func.max(Image.finished_at))
        .where(Image.job_id.in_(job_ids),
               Image.status.in_((ImageStatus.DONE, ImageStatus.ERROR)),
               Image.batch != UNREACHABLE_BATCH)
        .group_by(Image.job_id))}
    return {job_id: found.get(job_id) for job_id in job_ids}


def _summary(job: Job, counts: tuple, unreachable_rows: tuple, *,
             stall_seconds: int) -> JobSummary:
    """The summary from the batches' sums and the unreachable rows' count and latest time."""
    images, done, errors, cancelled, below, last = counts
    unreachable, unreachable_at = unreachable_rows
    images, done, errors, cancelled, below = (
        int(v or 0) for v in (images, done, errors, cancelled, below))
    pending = images - done - errors - cancelled
    total, errors = images + unreachable, errors + unreachable
    # Progress is any row, those recorded with the job too; ``last_finished`` is the last
    # a worker read (the batches'), which a rate is read to.
    progress = last
    if progress is None or (unreachable_at is not None
                            and as_utc(unreachable_at) > as_utc(progress)):
        progress = unreachable_at
    state = _state(job, in_batches=images, pending=pending, errors=errors,
                   stall_seconds=stall_seconds)
    progress_at = as_utc(progress or job.created_at)
    stalled = (
        state in (JobState.QUEUED, JobState.RUNNING)
        and utcnow() - progress_at > timedelta(seconds=stall_seconds)
    )
    return JobSummary(
        job, state, total, pending, done, errors, cancelled, below, last, stalled,
        unreachable=int(unreachable or 0),
    )


def _state(job: Job, *, in_batches: int, pending: int, errors: int,
           stall_seconds: int) -> JobState:
    """``in_batches``: the images workers read (queued until one of them is read; the rows
    recorded with the job are not a worker's start)."""
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
    if pending == in_batches:
        return JobState.QUEUED
    return JobState.RUNNING


def summarize_jobs(session: Session, *, jobs: list[Job], stall_seconds: int,
                   rates: bool = True) -> list[JobSummary]:
    """:func:`summarize_job` of each job, in two queries for all of them (a third for the
    rates, unless ``rates`` is False: /metrics counts states only).

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
    summaries = [_summary(job, counts.get(job.id, (None,) * 6),
                          unreachable.get(job.id, (0, None)), stall_seconds=stall_seconds)
                 for job in jobs]
    if not rates:
        return summaries
    cancelled = [s.job.id for s in summaries if s.cancelled]
    if cancelled:
        worked = _last_worked(session, cancelled)
        summaries = [dataclasses.replace(s, last_worked=worked[s.job.id]) if s.cancelled
                     else s for s in summaries]
    return _with_idle(session, summaries, stall_seconds=stall_seconds)
