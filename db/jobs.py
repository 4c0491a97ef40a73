"""Jobs: created, found by id, prefix or ``latest``, listed, named, cancelled, deleted,
and whether their producer is still walking.

All take the session by keyword.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import timedelta
from typing import cast

from sqlalchemy import CursorResult, func, select, tuple_, update
from sqlalchemy.orm import Session

from signdigits.db.batches import refresh_batch_counts
from signdigits.db.deleted import delete_job_rows
from signdigits.db.models import Batch, Image, ImageStatus, Job, as_utc, utcnow
from signdigits.files.names import BIDI_CONTROLS, LINE_BREAKS, is_control, name_problem


class JobNotFound(LookupError):
    pass


class JobFinished(Exception):
    """A job that ended (every image classified, or failed) cannot be cancelled."""


class JobNameError(ValueError):
    """A name no job can have: empty, too long, or holding control characters."""


class JobRunning(Exception):
    """A job still submitting, queued or running cannot be deleted: workers hold its work."""


MAX_NAME = 200
def job_name(text: str) -> str:
    """``text`` as a job's name, the one rule of the API and the command line: trimmed,
    runs of spaces and tabs made one space, 1 to 200 characters; refused with a line
    break inside it (a name is one line), another control character or a bidirectional
    control."""
    trimmed = str(text).strip()
    name = " ".join(trimmed.split())
    if not name:
        raise JobNameError("a job's name cannot be empty")
    if len(name) > MAX_NAME:
        raise JobNameError(f"a job's name is at most {MAX_NAME} characters (got {len(name)})")
    # Line breaks are looked for in the text as given (split() made them spaces); the
    # rest in the name, whose tabs split() made spaces too.
    problem = name_problem(trimmed if any(c in LINE_BREAKS for c in trimmed) else name)
    if problem:
        raise JobNameError(f"a job's name {problem}")
    return name


def default_job_name(text: str) -> str:
    """A name made from a folder's or a file's name: never refused, cut to fit (control
    and bidirectional control characters left out)."""
    cleaned = "".join(c for c in str(text) if not is_control(c) and c not in BIDI_CONTROLS)
    return " ".join(cleaned.split())[:MAX_NAME] or "job"


def rename_job(session: Session, *, job_id: str, name: str) -> Job:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise JobNotFound(f"no job {job_id!r}")
    job.name = job_name(name)
    return job


def delete_job(session: Session, *, job_id: str, finished: bool) -> None:
    """Delete the job with its images, batches, reviews and hands, keeping what they
    counted for /metrics (:func:`db.deleted.delete_job_rows`). ``finished`` is whether
    its summary says it ended: a job that has not could still have batches queued, which
    workers would keep putting back for an hour."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise JobNotFound(f"no job {job_id!r}")
    if not finished:
        raise JobRunning(f"job {job.id} ({job.name}) has not ended: cancel it first, "
                         "then delete it")
    delete_job_rows(session, job_id=job.id)


def create_job(session: Session, *, job: Job) -> None:
    session.add(job)
    session.flush()


_JOB_REF = re.compile(r"[0-9a-fA-F]{1,32}")


def resolve_job(session: Session, *, ref: str) -> Job:
    """A job by id, unique id prefix, or ``latest``."""
    if ref == "latest":
        job = session.scalars(select(Job).order_by(Job.created_at.desc()).limit(1)).first()
        if job is None:
            raise JobNotFound("no jobs yet")
        return job
    if not _JOB_REF.fullmatch(ref):
        # Ids are 32 hex digits: anything else matches none, and asked of the database it
        # was a 500 (a NUL on PostgreSQL), a traceback (a surrogate), or, for '', every job.
        raise JobNotFound(f"no job {ref!r} (a job id, a prefix of one, or 'latest')")
    job = session.get(Job, ref.lower())
    if job is not None:
        return job
    prefix = Job.id.startswith(ref.lower())  # hex only: no LIKE wildcard can reach here
    matches = session.scalars(select(Job).where(prefix).limit(2)).all()
    if len(matches) == 1:
        return matches[0]
    raise JobNotFound(f"no job {ref!r}" if not matches else f"job id {ref!r} is ambiguous")


def list_jobs(session: Session, *, limit: int = 50) -> list[Job]:
    return list(session.scalars(select(Job).order_by(Job.created_at.desc()).limit(limit)))


def cancel_job(session: Session, *, job_id: str) -> int:
    """Mark the job cancelled and its pending images skipped; returns how many.

    The job is read in this session, fresh: a copy read earlier would write back what it
    held and undo what the producer recorded since. Raises JobFinished for a job that
    already ended: marking it would turn a job whose every image was classified into
    "cancelled" in every report.
    """
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise JobNotFound(f"no job {job_id!r}")
    if job.cancelled_at is None and _ended(session, job):
        raise JobFinished(f"job {job.id} already ended: nothing to cancel")
    if job.cancelled_at is None:
        job.cancelled_at = utcnow()
    result = cast(CursorResult, session.execute(
        update(Image)
        .where(Image.job_id == job.id, Image.status == ImageStatus.PENDING)
        .values(status=ImageStatus.CANCELLED, error="job cancelled", finished_at=utcnow())
        .execution_options(synchronize_session=False)
    ))
    if result.rowcount:
        refresh_batch_counts(session, job_id=job.id)
    return result.rowcount


def lock_job(session: Session, *, job_id: str) -> Job:
    """The job read afresh and held until the transaction ends (PostgreSQL's ``FOR
    UPDATE``; on SQLite the writing transaction already holds the database).

    A walk's part takes it after writing its rows, and a cancel's first write is to the
    job: so one commits after the other, and the walk sees a cancel that came first,
    while a cancel that comes second finds the part's rows.
    """
    return session.get_one(Job, job_id, with_for_update=True, populate_existing=True)


def _ended(session: Session, job: Job) -> bool:
    if job.failure:
        return True
    if job.submitted_at is None:  # its walk may still add images
        return False
    pending = select(Image.id).where(Image.job_id == job.id,
                                     Image.status == ImageStatus.PENDING).limit(1)
    return session.scalar(pending) is None


def producer_alive(job: Job, *, stall_seconds: int) -> bool:
    """Whether the producer recorded on the job may still be walking its folder.

    On the producer's own host its process is looked up (a killed producer is seen at
    once); elsewhere, and for a reused process id, it must have written within
    ``stall_seconds`` (it writes after each part and while it waits for the queue).
    """
    if job.producer is None or job.producer_seen_at is None:
        return False
    host, _, pid = job.producer.rpartition(":")
    host = host.rpartition("@")[2]  # "serve@host:pid": the web server's own walks
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # another user's process: alive
    return utcnow() - as_utc(job.producer_seen_at) <= timedelta(seconds=stall_seconds)


def count_rows(session: Session, *, job_id: str) -> tuple[int, int]:
    """The job's image rows and batches, as recorded."""
    images = session.scalar(select(func.count()).where(Image.job_id == job_id))
    batches = session.scalar(select(func.count()).where(Batch.job_id == job_id))
    return int(images or 0), int(batches or 0)


def jobs_page(session: Session, *, limit: int, offset: int) -> list[Job]:
    """Newest first; ``limit + 1`` rows are asked for, so the caller knows if more exist."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc())
    return list(session.scalars(query.offset(offset).limit(limit + 1)))


def jobs_by_id(session: Session, *, ids: list[str]) -> list[Job]:
    """The jobs of ``ids`` that exist, read fresh (a cancel or a failure shows)."""
    if not ids:
        return []
    return list(session.scalars(select(Job).where(Job.id.in_(ids))
                                .execution_options(populate_existing=True)))


def newest_job_id(session: Session) -> str | None:
    return session.scalar(select(Job.id).order_by(Job.created_at.desc(), Job.id.desc())
                          .limit(1))


def jobs_after(session: Session, *, job_id: str | None, limit: int = 50) -> list[Job]:
    """Jobs created after the job ``job_id`` (any job when None), oldest first: at most
    the newest ``limit``. An id no job has gives none."""
    query = select(Job)
    if job_id is not None:
        mark = select(Job.created_at, Job.id).where(Job.id == job_id).subquery()
        query = query.join(mark, tuple_(Job.created_at, Job.id) > tuple_(mark.c.created_at,
                                                                        mark.c.id))
    newest = list(session.scalars(
        query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)))
    return newest[::-1]
