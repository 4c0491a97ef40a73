"""Every query the producer, workers and CLI run; all take the session by keyword."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Row, bindparam, case, func, insert, select, text, update
from sqlalchemy.orm import Session

from db.models import Batch, Image, ImageStatus, Job, JobState, utcnow


class JobNotFound(LookupError):
    pass


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


def as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every timestamp we write is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def create_job(session: Session, *, job: Job) -> None:
    session.add(job)
    session.flush()


def add_manifest(session: Session, *, job_id: str, rows: Sequence[tuple[int, str]]) -> None:
    """Insert pending image rows, (batch number, relative path) each, and their batches.

    Every batch's images must come in one call. On PostgreSQL the images go in with COPY:
    a third of the time of an INSERT executemany and almost none of the producer's CPU,
    which the workers need while a large folder is walked.
    """
    if not rows:
        return
    connection = session.connection()
    batches = sorted({batch for batch, _ in rows})
    connection.execute(insert(Batch.__table__),
                       [{"job_id": job_id, "batch": b, "attempts": 0} for b in batches])
    if connection.dialect.name == "postgresql":
        columns = "job_id, batch, path, status, attempts"
        cursor = connection.connection.driver_connection.cursor()
        with cursor, cursor.copy(f"COPY {Image.__tablename__} ({columns}) FROM STDIN") as copy:
            for batch, path in rows:
                copy.write_row((job_id, batch, path, ImageStatus.PENDING.value, 0))
        return
    # The table, not the mapped class: the ORM's bulk path spends more CPU per row than
    # SQLite spends inserting it.
    connection.execute(
        insert(Image.__table__),
        [
            {"job_id": job_id, "batch": b, "path": p, "status": ImageStatus.PENDING.value,
             "attempts": 0}
            for b, p in rows
        ],
    )


def resolve_job(session: Session, *, ref: str) -> Job:
    """A job by id, unique id prefix, or ``latest``."""
    if ref == "latest":
        job = session.scalars(select(Job).order_by(Job.created_at.desc()).limit(1)).first()
        if job is None:
            raise JobNotFound("no jobs yet")
        return job
    job = session.get(Job, ref)
    if job is not None:
        return job
    # autoescape: a '_' or '%' typed by the user is a character, not a LIKE wildcard.
    prefix = Job.id.startswith(ref.lower(), autoescape=True)
    matches = session.scalars(select(Job).where(prefix).limit(2)).all()
    if len(matches) == 1:
        return matches[0]
    raise JobNotFound(f"no job {ref!r}" if not matches else f"job id {ref!r} is ambiguous")


def list_jobs(session: Session, *, limit: int = 50) -> list[Job]:
    return list(session.scalars(select(Job).order_by(Job.created_at.desc()).limit(limit)))


def summarize_job(session: Session, *, job: Job, stall_seconds: int) -> JobSummary:
    status = Image.status
    row = session.execute(
        select(
            func.count(),
            func.sum(case((status == ImageStatus.PENDING, 1), else_=0)),
            func.sum(case((status == ImageStatus.DONE, 1), else_=0)),
            func.sum(case((status == ImageStatus.ERROR, 1), else_=0)),
            func.sum(case((status == ImageStatus.CANCELLED, 1), else_=0)),
            func.sum(case((Image.below_threshold.is_(True), 1), else_=0)),
            func.max(Image.finished_at),
        ).where(Image.job_id == job.id)
    ).one()
    total, pending, done, errors, cancelled, below = (int(v or 0) for v in row[:6])
    last = row[6]
    if job.failure:
        state = JobState.FAILED
    elif job.cancelled_at is not None:
        state = JobState.CANCELLED
    elif pending == 0 and job.total_batches:  # 0 total batches: the producer is still walking
        state = JobState.DONE_WITH_ERRORS if errors else JobState.DONE
    elif pending == total:
        state = JobState.QUEUED
    else:
        state = JobState.RUNNING
    progress_at = as_utc(last or job.created_at)
    stalled = (
        state in (JobState.QUEUED, JobState.RUNNING)
        and utcnow() - progress_at > timedelta(seconds=stall_seconds)
    )
    return JobSummary(
        job, state, total, pending, done, errors, cancelled, below, last, stalled
    )


def pending_images(session: Session, *, job_id: str, batch: int) -> list[Row[tuple[int, str]]]:
    """The batch's pending images as ``(id, path)`` rows, in id order."""
    return list(
        session.execute(
            select(Image.id, Image.path)
            .where(Image.job_id == job_id, Image.status == ImageStatus.PENDING)
            .where(Image.batch == batch)
            .order_by(Image.id)
        )
    )


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


def store_results(session: Session, *, rows: Sequence[dict]) -> None:
    """Write finished rows by primary key, only over rows still pending, in one statement.

    Guarding on ``pending`` makes a batch delivered twice harmless: the second delivery
    finds nothing to overwrite, and each image keeps exactly one result. Every row must
    carry the same keys (an executemany).
    """
    if not rows:
        return
    table = Image.__table__
    columns = [key for key in rows[0] if key != "id"]
    if session.get_bind().dialect.name == "postgresql":
        _store_results_in_one_statement(session, rows=rows, columns=columns)
        return
    statement = (
        update(table)
        .where(table.c.id == bindparam("row_id"), table.c.status == ImageStatus.PENDING)
        .values({column: bindparam(f"new_{column}") for column in columns})
    )
    session.execute(
        statement,
        [{"row_id": r["id"], **{f"new_{c}": r[c] for c in columns}} for r in rows],
    )


def _store_results_in_one_statement(
    session: Session, *, rows: Sequence[dict], columns: list[str]
) -> None:
    """PostgreSQL: the whole batch as one JSON document, joined to the table in one UPDATE.

    An executemany runs one UPDATE per image, and binding one array per column spent
    ~2 ms a batch in psycopg's Python array code. One document costs the client one
    ``json.dumps`` and the server one parse and one plan per batch.
    """
    table = Image.__table__
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    names = ["id", *columns]
    record = ", ".join(f"{quote(n)} {table.c[n].type.compile(dialect=dialect)}" for n in names)
    assignments = ", ".join(f"{quote(c)} = v.{quote(c)}" for c in columns)
    statement = text(
        f"UPDATE {quote(table.name)} AS i SET {assignments} "
        f"FROM json_to_recordset(CAST(:rows AS json)) AS v({record}) "
        "WHERE i.id = v.id AND i.status = :pending"
    )
    document = json.dumps([{n: row[n] for n in names} for row in rows], default=_json_value)
    session.execute(statement, {"rows": document, "pending": ImageStatus.PENDING.value})


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} has no JSON form")


def cancel_job(session: Session, *, job: Job) -> int:
    """Mark the job cancelled and its pending images skipped; returns how many."""
    if job.cancelled_at is None:
        job.cancelled_at = utcnow()
    result = session.execute(
        update(Image)
        .where(Image.job_id == job.id, Image.status == ImageStatus.PENDING)
        .values(status=ImageStatus.CANCELLED, error="job cancelled", finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def iter_results(
    session: Session,
    *,
    job_id: str,
    digit: int | None = None,
    below_threshold: bool = False,
    errors: bool = False,
) -> Iterator[Image]:
    query = select(Image).where(Image.job_id == job_id).order_by(Image.path)
    if digit is not None:
        query = query.where(Image.digit == digit)
    if below_threshold:
        query = query.where(Image.below_threshold.is_(True))
    if errors:
        query = query.where(Image.status.in_([ImageStatus.ERROR, ImageStatus.CANCELLED]))
    yield from session.scalars(query.execution_options(yield_per=2000))


def digit_counts(session: Session, *, job_id: str) -> dict[int, int]:
    rows = session.execute(
        select(Image.digit, func.count())
        .where(Image.job_id == job_id, Image.status == ImageStatus.DONE)
        .group_by(Image.digit)
    )
    return {int(d): int(n) for d, n in rows}
