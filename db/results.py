"""Results: a batch's answers written (only over rows still pending), and read back per
job: every row, the count per digit, the confidence histogram.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.orm import Session

from signdigits.db.batches import pending_images, refresh_batch_counts
from signdigits.db.export import reviewed_digit
from signdigits.db.hands import store_hands
from signdigits.db.images import no_digit_count
from signdigits.db.jobs import create_job, default_job_name
from signdigits.db.manifest import add_manifest
from signdigits.db.models import IMAGES, Batch, Image, ImageStatus, Job, Review, utcnow
from signdigits.db.reviews import review_changes, with_current_review


def store_results(session: Session, *, job_id: str, batch: int, rows: Sequence[dict]) -> None:
    """Write finished rows of one batch by primary key, only over rows still pending, and
    bring the batch's counts up to date.

    Guarding on ``pending`` makes a batch delivered twice harmless: the second delivery
    finds nothing to overwrite, and each image keeps exactly one result. Every row must
    carry the same keys (an executemany).
    """
    if not rows:
        return
    columns = [key for key in rows[0] if key != "id"]
    if session.get_bind().dialect.name == "postgresql":
        _store_and_count_in_one_statement(session, job_id=job_id, batch=batch, rows=rows,
                                          columns=columns)
    else:
        _store_and_recount(session, job_id=job_id, batch=batch, rows=rows, columns=columns)
    store_hands(session, rows=rows)


def _store_and_recount(session: Session, *, job_id: str, batch: int, rows: Sequence[dict],
                       columns: list[str]) -> None:
    table = IMAGES
    statement = (
        update(table)
        .where(table.c.id == bindparam("row_id"), table.c.status == ImageStatus.PENDING)
        .values({column: bindparam(f"new_{column}") for column in columns})
    )
    session.execute(
        statement,
        [{"row_id": r["id"], **{f"new_{c}": r[c] for c in columns}} for r in rows],
    )
    refresh_batch_counts(session, job_id=job_id, batches=[batch])


def _store_and_count_in_one_statement(
    session: Session, *, job_id: str, batch: int, rows: Sequence[dict], columns: list[str]
) -> None:
    """PostgreSQL: the whole batch as one JSON document, joined to the table in one UPDATE,
    whose changed rows are added to the batch's counts in the same statement.

    An executemany runs one UPDATE per image, and binding one array per column spent
    ~2 ms a batch in psycopg's Python array code. One document costs the client one
    ``json.dumps`` and the server one parse and one plan per batch. Adding what the
    UPDATE returns is exact, as only rows still pending change (each row is counted
    once, when it leaves pending), and it saves the recount's index scan and a round
    trip per batch (bench/store.py, 10,112 images: 2.6 s wall with the recount, 1.5 s).
    """
    table = IMAGES
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    names = ["id", *columns]
    record = ", ".join(f"{quote(n)} {table.c[n].type.compile(dialect=dialect)}" for n in names)
    assignments = ", ".join(f"{quote(c)} = v.{quote(c)}" for c in columns)
    statement = text(
        f"WITH changed AS (UPDATE {quote(table.name)} AS i SET {assignments} "
        f"FROM json_to_recordset(CAST(:rows AS json)) AS v({record}) "
        # The job and batch too: the (job_id, status, batch) index then finds the batch's
        # pending rows, where the planner chose to scan every row of a 10,000-row table
        # (5.7 of the 8.6 ms a statement took); and only this batch's rows change, so
        # only they are added to its counts.
        "WHERE i.id = v.id AND i.status = :pending AND i.job_id = :job_id "
        "AND i.batch = :batch RETURNING i.status, i.below_threshold, i.finished_at), "
        "added AS (SELECT count(*) FILTER (WHERE status = :done) AS done, "
        "count(*) FILTER (WHERE status = :error) AS errors, "
        "count(*) FILTER (WHERE status = :cancelled) AS cancelled, "
        "count(*) FILTER (WHERE below_threshold) AS below, "
        "max(finished_at) AS last FROM changed) "
        f"UPDATE {quote(Batch.__tablename__)} AS b SET done = b.done + a.done, "
        "errors = b.errors + a.errors, "
        "cancelled = b.cancelled + a.cancelled, "
        "below_threshold = b.below_threshold + a.below, "
        "last_finished_at = GREATEST(b.last_finished_at, a.last) "
        "FROM added AS a WHERE b.job_id = :job_id AND b.batch = :batch"
    )
    document = json.dumps([{n: row[n] for n in names} for row in rows], default=_json_value)
    session.execute(statement, {
        "rows": document, "pending": ImageStatus.PENDING.value,
        "done": ImageStatus.DONE.value, "error": ImageStatus.ERROR.value,
        "cancelled": ImageStatus.CANCELLED.value, "job_id": job_id, "batch": batch,
    })


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} has no JSON form")


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
    return {int(d): int(n) for d, n in rows if d is not None}


def without_a_digit(session: Session, *, job_id: str) -> tuple[int, int]:
    """The job's read photos that have no one digit: (no hand found, several hands)."""
    several = (func.coalesce(Image.hand_count, 0) > 1).label("several")
    rows = session.execute(
        select(several, func.count())
        .where(Image.job_id == job_id, Image.status == ImageStatus.DONE, Image.digit.is_(None))
        .group_by(several))
    counts = {bool(flag): int(n) for flag, n in rows}
    return counts.get(False, 0), counts.get(True, 0)


@dataclass(frozen=True)
class FinalCounts:
    digits: list[int]  # images per digit, 0-9, with the reviews applied
    no_hand: int  # no hand found, and no person's digit since
    unusable: int  # marked unusable by a person


def final_digit_counts(session: Session, *, job_id: str) -> FinalCounts:
    """Images per digit as the results say now: the model's digit, or the current review's.

    The model's counts come from the (job_id, digit) index; only the reviewed images are
    read one by one, to move each from the model's column to the person's.
    """
    model = digit_counts(session, job_id=job_id)
    digits = [model.get(d, 0) for d in range(10)]
    no_hand = no_digit_count(session, job_id=job_id)
    unusable = 0
    for digit, hand_count, review in review_changes(session, job_id=job_id):
        if digit is not None:
            digits[digit] -= 1
        elif not hand_count:
            no_hand -= 1
        final = reviewed_digit(review)
        if final is not None:
            digits[final] += 1
        elif review.unusable:
            unusable += 1
    return FinalCounts(digits, no_hand, unusable)


def confidence_histogram(session: Session, *, job_id: str, bins: int = 20) -> list[int]:
    """How many classified images fall in each of ``bins`` equal confidence ranges."""
    # The smaller of two values: min() on SQLite, least() on PostgreSQL (min aggregates).
    smaller = func.least if session.get_bind().dialect.name == "postgresql" else func.min
    bucket = smaller(func.floor(Image.confidence * bins), bins - 1)
    counts = [0] * bins
    query = (select(bucket, func.count()).where(Image.job_id == job_id,
                                                Image.confidence.is_not(None))
             .group_by(bucket))
    for index, count in session.execute(query):
        counts[int(index)] += int(count)
    return counts


def record_prediction(session: Session, *, root: str, path: str, answer: dict,
                      threshold_from_model: bool) -> tuple[str, int]:
    """A one-image job holding a prediction already made (``POST /api/predict`` with
    ``store``): its job id and image id, so the photo can be browsed and reviewed later.

    It is written the way a submitted job is (job row, manifest, stored result), so
    listing, review, export and ``resume`` see nothing special about it.
    """
    now = utcnow()
    job = Job(id=uuid.uuid4().hex, name=default_job_name(f"photo {path}"), root=root,
              threshold=answer["threshold"], threshold_from_model=threshold_from_model,
              batch_size=1,
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
        # The worker's answer names the hands it found as the batch rows store them.
        "hand": {"hands": answer["hands"]} if answer.get("hands") else None,
        "reading": answer.get("reading"),
        "digits": answer.get("digits"), "hand_count": answer.get("hand_count"),
    }])
    return job.id, image.id
