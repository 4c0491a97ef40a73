"""What ``GET /metrics`` counts in the database when it is scraped: jobs by state, images
by outcome, and images finished in the last minute. Read from the ``batches`` rows (one
per batch, kept by :func:`db.batches.refresh_batch_counts`), never the image rows, so a
scrape costs the same at a million images as at ten."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from signdigits.db.models import UNREACHABLE_BATCH, Batch, Image, ImageStatus, Job, JobState, utcnow
from signdigits.db.progress import summarize_jobs

OUTCOMES = ("done", "below_threshold", "error", "cancelled", "pending")


def jobs_by_state(session: Session, *, stall_seconds: int) -> dict[str, int]:
    """Every state, with how many jobs are in it now (0 for none)."""
    jobs = list(session.scalars(select(Job)))
    counts = Counter(str(s.state) for s in summarize_jobs(session, jobs=jobs, rates=False,
                                                          stall_seconds=stall_seconds))
    return {str(state): counts.get(str(state), 0) for state in JobState}


def images_by_outcome(session: Session) -> dict[str, int]:
    """Image rows by outcome: ``done`` above the threshold, ``below_threshold``, ``error``
    (unreadable, or given up), ``cancelled``, ``pending``."""
    images, done, errors, cancelled, below = (int(v or 0) for v in session.execute(
        select(func.sum(Batch.images), func.sum(Batch.done), func.sum(Batch.errors),
               func.sum(Batch.cancelled), func.sum(Batch.below_threshold))).one())
    unreachable = int(session.scalar(select(func.count()).where(
        Image.status == ImageStatus.ERROR, Image.batch == UNREACHABLE_BATCH)) or 0)
    return {"done": done - below, "below_threshold": below, "error": errors + unreachable,
            "cancelled": cancelled, "pending": images - done - errors - cancelled}


def images_finished_since(session: Session, *, seconds: float) -> int:
    """Images of the batches whose last row was stored in the last ``seconds``: a batch
    counts whole when it finishes (the rate is read over a minute, a few batches)."""
    cutoff = utcnow() - timedelta(seconds=seconds)
    if session.get_bind().dialect.name == "sqlite":
        cutoff = cutoff.replace(tzinfo=None)  # stored as UTC text without a zone
    found = session.scalar(select(func.sum(Batch.done + Batch.errors))
                           .where(Batch.last_finished_at >= cutoff))
    return int(found or 0)
