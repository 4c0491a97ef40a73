"""The queries behind the web pages and the HTTP API: pages of jobs and of image rows.

Apart from :mod:`db.queries` (the pipeline's), so that the web's reading patterns can
change without touching what producer and workers depend on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from signdigits.db.models import Image, ImageStatus, Job, utcnow
from signdigits.db.queries import add_manifest, create_job, pending_images
from signdigits.db.store import store_results


@dataclass(frozen=True)
class ImageFilter:
    digit: int | None = None
    below_threshold: bool | None = None
    status: str | None = None


@dataclass(frozen=True)
class ImageCursor:
    """Where a page ended: the last row's id and, in confidence order, its confidence.

    ``unscored`` marks the second part of confidence order: rows with no confidence yet
    (pending, errors), by id, after every scored row.
    """

    last_id: int = 0
    confidence: float | None = None
    unscored: bool = False


def jobs_page(session: Session, *, limit: int, offset: int) -> list[Job]:
    """Newest first; ``limit + 1`` rows are asked for, so the caller knows if more exist."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc())
    return list(session.scalars(query.offset(offset).limit(limit + 1)))


def _filtered(query, job_id: str, where: ImageFilter):
    query = query.where(Image.job_id == job_id)
    if where.digit is not None:
        query = query.where(Image.digit == where.digit)
    if where.below_threshold is not None:
        query = query.where(Image.below_threshold.is_(where.below_threshold))
    if where.status is not None:
        query = query.where(Image.status == where.status)
    return query


def images_page(
    session: Session, *, job_id: str, where: ImageFilter, order: str, limit: int,
    cursor: ImageCursor | None,
) -> tuple[list[Image], ImageCursor | None]:
    """One page of the job's image rows and the cursor of the next page (None: the last).

    Keyset pagination: each page starts where the last ended (``id > last`` or
    ``(confidence, id) > last``), so page 1,000 reads as few rows as page 1; an OFFSET
    would read and skip every earlier row. ``order`` is ``id`` or ``confidence`` (lowest
    first, then the rows that have none).
    """
    cursor = cursor or ImageCursor()
    if order == "id":
        query = _filtered(select(Image), job_id, where).where(Image.id > cursor.last_id)
        rows = list(session.scalars(query.order_by(Image.id).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, ImageCursor(rows[-1].id) if more else None
    rows = []
    if not cursor.unscored:
        query = _filtered(select(Image), job_id, where).where(Image.confidence.is_not(None))
        if cursor.confidence is not None:
            # A row-value comparison, not ``c > x OR (c = x AND id > y)``: SQLite seeks the
            # (job_id, confidence, id) index to it, where the OR form read every earlier
            # entry (page 500 of 100,000 rows took twice page 1's time).
            query = query.where(
                tuple_(Image.confidence, Image.id) > tuple_(cursor.confidence, cursor.last_id))
        rows = list(session.scalars(
            query.order_by(Image.confidence, Image.id).limit(limit + 1)))
        if len(rows) > limit:
            last = rows[limit - 1]
            return rows[:limit], ImageCursor(last.id, last.confidence)
        cursor = ImageCursor(0, None, unscored=True)
    query = _filtered(select(Image), job_id, where).where(
        Image.confidence.is_(None), Image.id > cursor.last_id)
    unscored = list(session.scalars(query.order_by(Image.id).limit(limit - len(rows) + 1)))
    more = len(rows) + len(unscored) > limit
    rows = (rows + unscored)[:limit]
    if not more:
        return rows, None
    if rows[-1].confidence is not None:  # the page ended on the last scored row
        return rows, ImageCursor(0, None, unscored=True)
    return rows, ImageCursor(rows[-1].id, None, unscored=True)


def image_with_job(session: Session, *, image_id: int) -> tuple[Image, Job] | None:
    found = session.execute(
        select(Image, Job).join(Job, Job.id == Image.job_id).where(Image.id == image_id)
    ).first()
    return (found[0], found[1]) if found else None


def confidence_histogram(session: Session, *, job_id: str, bins: int = 20) -> list[int]:
    """How many classified images fall in each of ``bins`` equal confidence ranges."""
    from sqlalchemy import func

    bucket = func.min(func.floor(Image.confidence * bins), bins - 1)
    if session.get_bind().dialect.name == "postgresql":
        bucket = func.least(func.floor(Image.confidence * bins), bins - 1)
    counts = [0] * bins
    query = (select(bucket, func.count()).where(Image.job_id == job_id,
                                                Image.confidence.is_not(None))
             .group_by(bucket))
    for index, count in session.execute(query):
        counts[int(index)] += int(count)
    return counts


def record_prediction(session: Session, *, root: str, path: str, answer: dict) -> tuple[str, int]:
    """A one-image job holding a prediction already made (``POST /api/predict`` with
    ``store``): its job id and image id, so the photo can be browsed and reviewed later.

    It is written the way a submitted job is (job row, manifest, stored result), so
    listing, review, export and ``resume`` see nothing special about it.
    """
    now = utcnow()
    job = Job(id=uuid.uuid4().hex, root=root, threshold=answer["threshold"], batch_size=1,
              total_images=1, total_batches=1, model_version=answer["model_version"],
              inline=True, created_at=now, submitted_at=now)
    create_job(session, job=job)
    add_manifest(session, job_id=job.id, rows=[(0, path)])
    (image,) = pending_images(session, job_id=job.id, batch=0)
    store_results(session, job_id=job.id, batch=0, rows=[{
        "id": image.id, "status": ImageStatus.DONE, "digit": answer["digit"],
        "confidence": answer["confidence"], "below_threshold": answer["below_threshold"],
        "probabilities": answer["probabilities"], "model_version": answer["model_version"],
        "worker": answer.get("worker"), "attempts": 1, "finished_at": now,
    }])
    return job.id, image.id
