"""Pages of a job's image rows for the web and the API: filtered, ordered, with a cursor,
one image with its job, and how many were read with no digit.

Filters on reviews (reviewed or not) are an ``EXISTS`` on ``reviews`` per candidate row,
one seek of its ``(image_id, id)`` index; filters on folder labels (``path`` starting
``3/``) are read from the row itself (:mod:`db.labels`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, func, or_, select, tuple_
from sqlalchemy.orm import Session

from signdigits.db.labels import label_is, labelled_wrong
from signdigits.db.models import Image, ImageStatus, Job, Review


@dataclass(frozen=True)
class ImageFilter:
    digit: int | None = None
    below_threshold: bool | None = None
    status: str | None = None
    reviewed: bool | None = None
    no_hand: bool = False  # only rows read with no hand found (no digit, not several)
    label: int | None = None  # only rows under that digit's label folder
    wrong: bool = False  # only labelled one-hand rows whose model answer is not the label
    batches: tuple[int, ...] | None = None  # only these batches' finished rows


@dataclass(frozen=True)
class ImageCursor:
    """Where a page ended: the last row's id and, in confidence order, its confidence.

    ``unscored`` marks the second part of confidence order: rows with no confidence yet
    (pending, errors), by id, after every scored row.
    """

    last_id: int = 0
    confidence: float | None = None
    unscored: bool = False


def _filtered(query, job_id: str, where: ImageFilter):
    query = query.where(Image.job_id == job_id)
    if where.digit is not None:
        query = query.where(Image.digit == where.digit)
    if where.below_threshold is not None:
        query = query.where(Image.below_threshold.is_(where.below_threshold))
    if where.status is not None:
        query = query.where(Image.status == where.status)
    if where.reviewed is not None:
        any_review = exists().where(Review.image_id == Image.id)
        query = query.where(any_review if where.reviewed else ~any_review)
    if where.no_hand:
        query = query.where(*no_hand_rows())
    if where.label is not None:
        query = query.where(label_is(where.label))
    if where.wrong:
        query = query.where(*labelled_wrong())
    if where.batches is not None:
        # Finished rows only: the (job_id, status, batch) index then seeks each batch.
        query = query.where(Image.status.in_(FINISHED), Image.batch.in_(where.batches))
    return query


FINISHED = (ImageStatus.DONE, ImageStatus.ERROR, ImageStatus.CANCELLED)


def no_hand_rows() -> tuple:
    """Classified with no hand found (not several hands, which have no single digit
    either; rows read before hands were counted have no hand count)."""
    return (Image.status == ImageStatus.DONE, Image.digit.is_(None),
            or_(Image.hand_count.is_(None), Image.hand_count == 0))


def images_count(session: Session, *, job_id: str, where: ImageFilter) -> int:
    """How many of the job's rows ``where`` matches (what "select all" would take)."""
    return session.scalar(_filtered(select(func.count()).select_from(Image), job_id, where)) or 0


def image_ids_matching(session: Session, *, job_id: str, where: ImageFilter,
                       limit: int) -> list[int]:
    """The ids of the job's classified rows ``where`` matches, at most ``limit``."""
    query = _filtered(select(Image.id), job_id, where).where(Image.status == ImageStatus.DONE)
    return list(session.scalars(query.order_by(Image.id).limit(limit)))


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


def no_digit_count(session: Session, *, job_id: str) -> int:
    """The job's classified rows where no hand was found (not those with several hands,
    which have no single digit either; rows read before hands were counted have no
    hand count)."""
    return session.scalar(
        select(func.count()).select_from(Image).where(Image.job_id == job_id, *no_hand_rows())
    ) or 0
