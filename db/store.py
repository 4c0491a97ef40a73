"""A batch's results written, and the batch's counts kept equal to its image rows.

What the workers run once a batch is classified, and what every other change of an
image's status (a cancel, a test's own UPDATE) must call: a job's summary reads these
counts, one row per batch, and never the image rows themselves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, case, func, select, text, update
from sqlalchemy.orm import Session

from signdigits.db.models import UNREACHABLE_BATCH, Batch, Image, ImageStatus


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
        return
    table = Image.__table__
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
    trip per batch (bench-store, 10,112 images: 2.6 s wall with the recount, 1.5 s).
    """
    table = Image.__table__
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
    # every image row for each stored batch, and bench-store went from 2 s to 25 s.
    values = [
        {"b_batch": batch, "b_images": n, "b_done": int(done or 0), "b_errors": int(errors or 0),
         "b_cancelled": int(cancelled or 0), "b_below": int(below or 0), "b_last": last}
        for batch, n, done, errors, cancelled, below, last in session.execute(counts)
    ]
    if not values:
        return
    table = Batch.__table__
    session.execute(
        update(table)
        .where(table.c.job_id == job_id, table.c.batch == bindparam("b_batch"))
        .values(images=bindparam("b_images"), done=bindparam("b_done"),
                errors=bindparam("b_errors"), cancelled=bindparam("b_cancelled"),
                below_threshold=bindparam("b_below"), last_finished_at=bindparam("b_last")),
        values,
    )
