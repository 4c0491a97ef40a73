"""The queries the producer, workers and CLI run (a batch's store and counts: db/store.py).

All take the session by keyword.
"""

from __future__ import annotations

import os
import re
import socket
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.orm import Session

from signdigits.db.models import UNREACHABLE_BATCH, Batch, Image, ImageStatus, Job, Review, utcnow
from signdigits.db.reviews import with_current_review
from signdigits.db.store import refresh_batch_counts
from signdigits.files.paths import disk_name, stored_name


class JobNotFound(LookupError):
    pass


def as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every timestamp we write is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def create_job(session: Session, *, job: Job) -> None:
    session.add(job)
    session.flush()


def add_manifest(session: Session, *, job_id: str, rows: Sequence[tuple[int, str]]) -> None:
    """Insert pending image rows, (batch number, relative path) each, and their batches.

    Paths are the walk's names: one that is not valid UTF-8 is stored readable in
    ``path`` and exactly in ``raw_path`` (:func:`files.paths.stored_name`). Every batch's
    images must come in one call. On PostgreSQL the images go in with COPY: a third of
    the time of an INSERT executemany and almost none of the producer's CPU, which the
    workers need while a large folder is walked.
    """
    if not rows:
        return
    connection = session.connection()
    sizes = Counter(batch for batch, _ in rows)
    connection.execute(insert(Batch.__table__), [
        {"job_id": job_id, "batch": b, "attempts": 0, "images": n}
        for b, n in sorted(sizes.items())])
    pending = ImageStatus.PENDING.value
    if connection.dialect.name == "postgresql":
        columns = "job_id, batch, path, raw_path, status, attempts"
        cursor = connection.connection.driver_connection.cursor()
        with cursor, cursor.copy(f"COPY {Image.__tablename__} ({columns}) FROM STDIN") as copy:
            for batch, name in rows:
                copy.write_row((job_id, batch, *stored_name(name), pending, 0))
        return
    # The table, not the mapped class: the ORM's bulk path spends more CPU per row than
    # SQLite spends inserting it.
    values = []
    for batch, name in rows:
        path, raw = stored_name(name)
        values.append({"job_id": job_id, "batch": batch, "path": path, "raw_path": raw,
                       "status": pending, "attempts": 0})
    connection.execute(insert(Image.__table__), values)


def add_unreachable(session: Session, *, job_id: str, rows: Sequence[tuple[str, str]]) -> None:
    """Error rows, (relative path, reason) each, for what the walk found but could not list."""
    if not rows:
        return
    now = utcnow()
    values = []
    for name, reason in rows:
        path, raw = stored_name(name)
        values.append({"job_id": job_id, "batch": UNREACHABLE_BATCH, "path": path,
                       "raw_path": raw, "status": ImageStatus.ERROR.value, "error": reason,
                       "attempts": 0, "finished_at": now})
    session.connection().execute(insert(Image.__table__), values)


def recorded_names(session: Session, *, job_id: str, names: Sequence[str]) -> set[str]:
    """Which of these walked names already have a row in the job (one indexed query)."""
    stored = {stored_name(name)[0]: name for name in names}
    found = session.scalars(
        select(Image.path).where(Image.job_id == job_id, Image.path.in_(list(stored)))
    )
    return {stored[path] for path in found}


def next_batch_number(session: Session, *, job_id: str) -> int:
    last = session.scalar(select(func.max(Batch.batch)).where(Batch.job_id == job_id))
    return 0 if last is None else last + 1


def mark_enqueued(session: Session, *, job_id: str, batches: Sequence[int]) -> None:
    if batches:
        table = Batch.__table__
        session.execute(
            update(table).where(table.c.job_id == job_id, table.c.batch.in_(list(batches)))
            .values(enqueued_at=utcnow())
        )


def unsent_batches(session: Session, *, job_id: str) -> list[int]:
    """Batches with pending images whose message was never sent."""
    return list(session.scalars(
        select(Batch.batch)
        .where(Batch.job_id == job_id, Batch.enqueued_at.is_(None))
        .where(select(Image.id).where(Image.job_id == job_id, Image.batch == Batch.batch,
                                      Image.status == ImageStatus.PENDING).exists())
        .order_by(Batch.batch)
    ))


def still_pending(session: Session, *, job_id: str, batches: Sequence[int]) -> set[int]:
    """Which of these batches still have pending images."""
    if not batches:
        return set()
    return set(session.scalars(
        select(Image.batch).distinct()
        .where(Image.job_id == job_id, Image.status == ImageStatus.PENDING)
        .where(Image.batch.in_(list(batches)))
    ))


def count_rows(session: Session, *, job_id: str) -> tuple[int, int]:
    """The job's image rows and batches, as recorded."""
    images = session.scalar(select(func.count()).where(Image.job_id == job_id))
    batches = session.scalar(select(func.count()).where(Batch.job_id == job_id))
    return int(images or 0), int(batches or 0)


def producer_alive(job: Job, *, stall_seconds: int) -> bool:
    """Whether the producer recorded on the job may still be walking its folder.

    On the producer's own host its process is looked up (a killed producer is seen at
    once); elsewhere, and for a reused process id, it must have written within
    ``stall_seconds`` (it writes after each part and while it waits for the queue).
    """
    if job.producer is None or job.producer_seen_at is None:
        return False
    host, _, pid = job.producer.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # another user's process: alive
    return utcnow() - as_utc(job.producer_seen_at) <= timedelta(seconds=stall_seconds)


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


class PendingFile(NamedTuple):
    id: int
    path: str  # the name to open: a name that is not UTF-8 as its exact bytes decode


def pending_images(session: Session, *, job_id: str, batch: int) -> list[PendingFile]:
    """The batch's pending images as ``(id, path)`` rows, in id order."""
    rows = session.execute(
        select(Image.id, Image.path, Image.raw_path)
        .where(Image.job_id == job_id, Image.status == ImageStatus.PENDING)
        .where(Image.batch == batch)
        .order_by(Image.id)
    )
    return [PendingFile(i, disk_name(path, raw)) for i, path, raw in rows]


def any_pending(session: Session | Connection, *, job_id: str) -> bool:
    """Whether any image of the job is pending: one index probe, however large the job.

    Takes a bare connection too, for a caller that probes many times a second.
    """
    query = select(Image.id).where(Image.job_id == job_id, Image.status == ImageStatus.PENDING)
    return session.execute(query.limit(1)).first() is not None


def pending_batches(session: Session, *, job_id: str) -> list[int]:
    return list(
        session.scalars(
            select(Image.batch)
            .where(Image.job_id == job_id, Image.status == ImageStatus.PENDING)
            .group_by(Image.batch)
            .order_by(Image.batch)
        )
    )


def count_attempt(session: Session, *, job_id: str, batch: int) -> int:
    """Add one to the batch's attempts; the new count."""
    table = Batch.__table__
    where = (table.c.job_id == job_id) & (table.c.batch == batch)
    attempts = session.execute(
        update(table).where(where).values(attempts=table.c.attempts + 1)
        .returning(table.c.attempts)
    ).scalar()
    if attempts is None:  # submitted by a producer from before batches were counted
        session.execute(insert(table).values(job_id=job_id, batch=batch, attempts=1))
        attempts = 1
    return attempts


def batch_attempts(session: Session, *, job_id: str, batch: int) -> int:
    found = session.scalar(select(Batch.attempts).where(Batch.job_id == job_id,
                                                        Batch.batch == batch))
    return found or 0


class JobFinished(Exception):
    """A job that ended (every image classified, or failed) cannot be cancelled."""


def cancel_job(session: Session, *, job: Job) -> int:
    """Mark the job cancelled and its pending images skipped; returns how many.

    Raises JobFinished for a job that already ended: marking it would turn a job whose
    every image was classified into "cancelled" in every report.
    """
    if job.cancelled_at is None and _ended(session, job):
        raise JobFinished(f"job {job.id} already ended: nothing to cancel")
    if job.cancelled_at is None:
        job.cancelled_at = utcnow()
    result = session.execute(
        update(Image)
        .where(Image.job_id == job.id, Image.status == ImageStatus.PENDING)
        .values(status=ImageStatus.CANCELLED, error="job cancelled", finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:
        refresh_batch_counts(session, job_id=job.id)
    return result.rowcount


def _ended(session: Session, job: Job) -> bool:
    if job.failure:
        return True
    if job.submitted_at is None:  # its walk may still add images
        return False
    pending = select(Image.id).where(Image.job_id == job.id,
                                     Image.status == ImageStatus.PENDING).limit(1)
    return session.scalar(pending) is None


def iter_results(
    session: Session,
    *,
    job_id: str,
    digit: int | None = None,
    below_threshold: bool = False,
    errors: bool = False,
) -> Iterator[tuple[Image, Review | None]]:
    """The job's rows by path, each with its current review (None when not reviewed)."""
    query = with_current_review(select(Image)).where(Image.job_id == job_id).order_by(Image.path)
    if digit is not None:
        query = query.where(Image.digit == digit)
    if below_threshold:
        query = query.where(Image.below_threshold.is_(True))
    if errors:
        query = query.where(Image.status.in_([ImageStatus.ERROR, ImageStatus.CANCELLED]))
    for row in session.execute(query.execution_options(yield_per=2000)):
        yield row[0], row[1]


def digit_counts(session: Session, *, job_id: str) -> dict[int, int]:
    rows = session.execute(
        select(Image.digit, func.count())
        .where(Image.job_id == job_id, Image.status == ImageStatus.DONE)
        .group_by(Image.digit)
    )
    return {int(d): int(n) for d, n in rows}
