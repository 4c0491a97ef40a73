"""Deleting a job's rows, and keeping what they counted (migration 0017).

``GET /metrics`` counts image rows by outcome and webhook POSTs from the rows there when
it is scraped. A counter must never fall (Prometheus reads a fall as a reset), so every
delete of a job goes through :func:`delete_job_rows`: it adds what the job's rows
counted to ``deleted_totals`` in the deleting transaction, and the scrape
(:func:`db.metrics.image_counts`) adds those totals back.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import delete
from sqlalchemy.orm import Session

from signdigits.db.models import (
    BATCHES,
    DELETED_TOTALS,
    IMAGES,
    JOBS,
    UNREACHABLE_BATCH,
    ImageStatus,
)

# The names of deleted_totals' rows: the jobs, then their batches' counts (``done``
# includes ``below_threshold``, as on ``batches``; ``errors`` includes the walk's own
# unreadable rows), then their webhook POSTs.
TOTALS = ("jobs", "images", "done", "below_threshold", "errors", "cancelled",
          "webhook_attempts")


def delete_job_rows(session: Session, *, job_id: str) -> bool:
    """Delete the job with its images, batches, reviews and hands, adding what they
    counted to ``deleted_totals`` in this transaction; whether there was such a job.

    The batches and the walk's error rows are deleted first, each statement returning
    the rows it removed: the totals are exactly what left, even if a worker's store
    raced the delete. The job's row goes last, and ON DELETE CASCADE takes the rest.
    """
    removed: Counter[str] = Counter()
    b = BATCHES
    for images, done, errors, cancelled, below in session.execute(
            delete(b).where(b.c.job_id == job_id)
            .returning(b.c.images, b.c.done, b.c.errors, b.c.cancelled, b.c.below_threshold)):
        removed.update(images=images or 0, done=done or 0, errors=errors or 0,
                       cancelled=cancelled or 0, below_threshold=below or 0)
    i = IMAGES
    for (status,) in session.execute(
            delete(i).where(i.c.job_id == job_id, i.c.batch == UNREACHABLE_BATCH)
            .returning(i.c.status)):
        removed.update(images=1, errors=int(status == ImageStatus.ERROR))
    j = JOBS
    found = session.execute(delete(j).where(j.c.id == job_id)
                            .returning(j.c.webhook_attempts)).first()
    if found is None:
        return False
    removed.update(jobs=1, webhook_attempts=found[0] or 0)
    _add(session, removed)
    return True


def _add(session: Session, amounts: Counter[str]) -> None:
    """Add to ``deleted_totals``: one statement that makes a missing row (an upsert, so
    two deletes at once each add theirs)."""
    # Imported here: the dialects cost every process that imports db.jobs 40 ms.
    from sqlalchemy.dialects import postgresql, sqlite

    table = DELETED_TOTALS
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(
        [{"name": name, "total": amounts[name]} for name in TOTALS])
    session.execute(statement.on_conflict_do_update(
        index_elements=[table.c.name], set_={"total": table.c.total + statement.excluded.total}))
