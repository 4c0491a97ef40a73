"""A job's manifest: the pending image rows (and their batches) the producer records as it
walks the folder, before any of them is enqueued.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from signdigits.db.models import (
    BATCHES,
    IMAGES,
    UNREACHABLE_BATCH,
    Image,
    ImageStatus,
    utcnow,
)
from signdigits.files.paths import stored_name


def add_manifest(session: Session, *, job_id: str,
                 rows: Sequence[tuple[int, str] | tuple[int, str, str | None]]) -> None:
    """Insert pending image rows, (batch number, relative path) each, and their batches;
    an object's row (an s3:// job) has its ETag third.

    Paths are the walk's names: one that is not valid UTF-8 is stored readable in
    ``path`` and exactly in ``raw_path`` (:func:`files.paths.stored_name`). Every batch's
    images must come in one call. On PostgreSQL the images go in with COPY: a third of
    the time of an INSERT executemany and almost none of the producer's CPU, which the
    workers need while a large folder is walked.
    """
    if not rows:
        return
    connection = session.connection()
    sizes = Counter(row[0] for row in rows)
    connection.execute(insert(BATCHES), [
        {"job_id": job_id, "batch": b, "attempts": 0, "images": n}
        for b, n in sorted(sizes.items())])
    pending = ImageStatus.PENDING.value
    if connection.dialect.name == "postgresql":
        columns = "job_id, batch, path, raw_path, status, attempts, etag"
        driver = connection.connection.driver_connection
        assert driver is not None  # a pooled connection in use always has one
        cursor = driver.cursor()
        with cursor, cursor.copy(f"COPY {Image.__tablename__} ({columns}) FROM STDIN") as copy:
            for batch, name, *etag in rows:
                copy.write_row((job_id, batch, *stored_name(name), pending, 0,
                                etag[0] if etag else None))
        return
    # The table, not the mapped class: the ORM's bulk path spends more CPU per row than
    # SQLite spends inserting it.
    values = []
    for batch, name, *etag in rows:
        path, raw = stored_name(name)
        values.append({"job_id": job_id, "batch": batch, "path": path, "raw_path": raw,
                       "status": pending, "attempts": 0, "etag": etag[0] if etag else None})
    connection.execute(insert(IMAGES), values)


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
    session.connection().execute(insert(IMAGES), values)


def recorded_names(session: Session, *, job_id: str, names: Sequence[str]) -> set[str]:
    """Which of these walked names already have a row in the job (one indexed query)."""
    stored = {stored_name(name)[0]: name for name in names}
    found = session.scalars(
        select(Image.path).where(Image.job_id == job_id, Image.path.in_(list(stored)))
    )
    return {stored[path] for path in found}
