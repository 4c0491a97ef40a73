"""What ``GET /metrics`` counts in the database when it is scraped: jobs by state, images
by outcome (ever, and now), and images finished in the last minute. Read from the
``batches`` rows (one per batch, kept by :func:`db.batches.refresh_batch_counts`) and
``deleted_totals`` (what deleted jobs took with them, db/deleted.py), never the image
rows, so a scrape costs the same at a million images as at ten."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import NamedTuple

from sqlalchemy import ScalarSelect, func, select
from sqlalchemy.orm import Session

from signdigits.db.deleted import TOTALS
from signdigits.db.models import (
    DELETED_TOTALS,
    UNREACHABLE_BATCH,
    Batch,
    Image,
    ImageStatus,
    Job,
    JobState,
    utcnow,
)
from signdigits.db.progress import summarize_jobs


def jobs_by_state(session: Session, *, stall_seconds: int) -> dict[str, int]:
    """Every state, with how many jobs are in it now (0 for none)."""
    jobs = list(session.scalars(select(Job)))
    counts = Counter(str(s.state) for s in summarize_jobs(session, jobs=jobs, rates=False,
                                                          stall_seconds=stall_seconds))
    return {str(state): counts.get(str(state), 0) for state in JobState}


class ImageCounts(NamedTuple):
    """What a scrape reads of the image rows and the webhooks, in one statement."""

    totals: dict[str, int]  # rows that reached each outcome, ever: counters, never fall
    rows: dict[str, int]  # rows in the database now by outcome, ``pending`` too: a gauge
    webhook_attempts: int  # every POST made, ever
    deleted_jobs: int  # jobs deleted since migration 0017


def _sum(column, *where) -> ScalarSelect:
    return select(func.coalesce(func.sum(column), 0)).where(*where).scalar_subquery()


def image_counts(session: Session) -> ImageCounts:
    """The rows by outcome (``above_threshold``, ``below_threshold``, ``error``:
    unreadable or given up, ``cancelled``, and now ``pending``), with the deleted jobs'
    rows added back for the counters (db/deleted.py).

    One statement: PostgreSQL reads it all from one snapshot (and SQLite reads one
    anyway), so a job deleted while it runs is counted once, among the rows or among
    the deleted, never twice nor not at all.
    """
    deleted = DELETED_TOTALS.c
    unreachable = select(func.count()).where(
        Image.status == ImageStatus.ERROR, Image.batch == UNREACHABLE_BATCH).scalar_subquery()
    row = session.execute(select(
        _sum(Batch.images), _sum(Batch.done), _sum(Batch.errors), _sum(Batch.cancelled),
        _sum(Batch.below_threshold), unreachable, _sum(Job.webhook_attempts),
        *(_sum(deleted.total, deleted.name == name) for name in TOTALS))).one()
    images, done, errors, cancelled, below, unreachable_rows, attempts = map(int, row[:7])
    gone = dict(zip(TOTALS, map(int, row[7:]), strict=True))
    # Classified rows split by the threshold, each named for its side: the API's "done"
    # is every classified row, so a `done` outcome here had read as that.
    rows = {"above_threshold": done - below, "below_threshold": below,
            "error": errors + unreachable_rows, "cancelled": cancelled,
            "pending": images - done - errors - cancelled}
    totals = {"above_threshold": rows["above_threshold"] + gone["done"]
              - gone["below_threshold"],
              "below_threshold": below + gone["below_threshold"],
              "error": rows["error"] + gone["errors"],
              "cancelled": cancelled + gone["cancelled"]}
    return ImageCounts(totals=totals, rows=rows,
                       webhook_attempts=attempts + gone["webhook_attempts"],
                       deleted_jobs=gone["jobs"])


def images_finished_since(session: Session, *, seconds: float) -> int:
    """Images of the batches whose last row was stored in the last ``seconds``: a batch
    counts whole when it finishes (the rate is read over a minute, a few batches)."""
    cutoff = utcnow() - timedelta(seconds=seconds)
    if session.get_bind().dialect.name == "sqlite":
        cutoff = cutoff.replace(tzinfo=None)  # stored as UTC text without a zone
    found = session.scalar(select(func.sum(Batch.done + Batch.errors))
                           .where(Batch.last_finished_at >= cutoff))
    return int(found or 0)
