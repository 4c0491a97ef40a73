"""Batches: numbered, marked enqueued, their pending images, their attempts, and their
counts kept equal to their image rows.

Every change of an image's status (a store, a cancel, a test's own UPDATE) must call
:func:`refresh_batch_counts`: a job's summary reads these counts, one row per batch, and
never the image rows themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, bindparam, case, func, insert, select, update
from sqlalchemy.orm import Session

from signdigits.db.models import BATCHES, UNREACHABLE_BATCH, Batch, Image, ImageStatus, utcnow
from signdigits.files.paths import disk_name


def next_batch_number(session: Session, *, job_id: str) -> int:
    last = session.scalar(select(func.max(Batch.batch)).where(Batch.job_id == job_id))
    return 0 if last is None else last + 1


def mark_enqueued(session: Session, *, job_id: str, batches: Sequence[int]) -> None:
    if batches:
        table = BATCHES
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


def pending_batches(session: Session, *, job_id: str) -> list[int]:
    return list(
        session.scalars(
            select(Image.batch)
            .where(Image.job_id == job_id, Image.status == ImageStatus.PENDING)
            .group_by(Image.batch)
            .order_by(Image.batch)
        )
    )


class PendingFile(NamedTuple):
    id: int
    path: str  # the name to open: a name that is not UTF-8 as its exact bytes decode
    etag: str | None = None  # an object's, as listed (s3:// jobs)


def pending_images(session: Session, *, job_id: str, batch: int) -> list[PendingFile]:
    """The batch's pending images as ``(id, path, etag)`` rows, in id order."""
    rows = session.execute(
        select(Image.id, Image.path, Image.raw_path, Image.etag)
        .where(Image.job_id == job_id, Image.status == ImageStatus.PENDING)
        .where(Image.batch == batch)
        .order_by(Image.id)
    )
    return [PendingFile(i, disk_name(path, raw), etag) for i, path, raw, etag in rows]


def any_pending(session: Session | Connection, *, job_id: str) -> bool:
    """Whether any image of the job is pending: one index probe, however large the job.

    Takes a bare connection too, for a caller that probes many times a second.
    """
    query = select(Image.id).where(Image.job_id == job_id, Image.status == ImageStatus.PENDING)
    return session.execute(query.limit(1)).first() is not None


def count_attempt(session: Session, *, job_id: str, batch: int) -> int:
    """Add one to the batch's attempts; the new count."""
    table = BATCHES
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


def refresh_batch_counts(session: Session, *, job_id: str,
                         batches: Sequence[int] | None = None) -> None:
    """Recount these batches' image rows by outcome (all of the job's batches when None).

    Called in the transaction that changed the rows, so a summary never reads counts
    that disagree with committed rows. Anything else that changes an image's status
    (a hand-written UPDATE, a test) must call it too, or the job's summary goes stale.
    """
    status = Image.status
    counts = (
        select(
            Image.batch, func.count(),
            func.sum(case((status == ImageStatus.DONE, 1), else_=0)),
            func.sum(case((status == ImageStatus.ERROR, 1), else_=0)),
            func.sum(case((status == ImageStatus.CANCELLED, 1), else_=0)),
            func.sum(case((Image.below_threshold.is_(True), 1), else_=0)),
            func.max(Image.finished_at),
        )
        .where(Image.job_id == job_id, Image.batch != UNREACHABLE_BATCH)
        .group_by(Image.batch)
    )
    if batches is not None:
        # Every status, spelled out: the index is (job_id, status, batch), and without a
        # status condition a batch's recount walks the whole job's entries (26 ms a batch
        # at 100,000 rows on SQLite, so a job's stores grew with the square of its size).
        # With it, one index seek per status reads just the batch.
        counts = counts.where(Image.status.in_(list(ImageStatus)),
                              Image.batch.in_(list(batches)))
    # Two statements, not one UPDATE ... FROM over this query: on a table whose statistics
    # are stale (a server without autovacuum), PostgreSQL planned that join as a scan of
    # every image row for each stored batch, and bench/store.py went from 2 s to 25 s.
    values = [
        {"b_batch": batch, "b_images": n, "b_done": int(done or 0), "b_errors": int(errors or 0),
         "b_cancelled": int(cancelled or 0), "b_below": int(below or 0), "b_last": last}
        for batch, n, done, errors, cancelled, below, last in session.execute(counts)
    ]
    if not values:
        return
    table = BATCHES
    session.execute(
        update(table)
        .where(table.c.job_id == job_id, table.c.batch == bindparam("b_batch"))
        .values(images=bindparam("b_images"), done=bindparam("b_done"),
                errors=bindparam("b_errors"), cancelled=bindparam("b_cancelled"),
                below_threshold=bindparam("b_below"), last_finished_at=bindparam("b_last")),
        values,
    )


def finished_batches(session: Session, *, job_id: str, since: datetime | None
                     ) -> list[tuple[int, int, datetime | None]]:
    """``(batch, rows finished, latest row stored)`` of the job's batches with a finished
    row stored at or after ``since`` (every one with a finished row when None): what the
    job page's event stream tells the page to fetch. One row per batch, as the job's
    summary reads them."""
    finished = Batch.done + Batch.errors + Batch.cancelled
    query = select(Batch.batch, finished, Batch.last_finished_at).where(
        Batch.job_id == job_id, finished > 0)
    if since is not None:
        query = query.where(Batch.last_finished_at >= since)
    return [(int(b), int(n), at) for b, n, at in session.execute(query.order_by(Batch.batch))]
