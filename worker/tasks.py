"""The Celery task: a thin shell around :func:`worker.batch.process_batch`.

It decides only what happens on failure: a database outage is waited out with the
message still unacknowledged; any other error is retried with backoff until the batch
has used its attempts, after which its images get error rows and the job moves on.
"""

from __future__ import annotations

import logging
import time

from celery import Task
from sqlalchemy.exc import DBAPIError, OperationalError

from broker.messages import TASK_NAME
from worker.app import app
from worker.batch import ClaimedBatch, PendingImage, give_up_batch, process_batch
from worker.context import get_context

log = logging.getLogger(__name__)

_DB_OUTAGE_WAIT = 300.0  # seconds of database outage a task waits out in place


@app.task(
    name=TASK_NAME,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
)
def classify_batch(self: Task, job_id: str, batch: int, inline: dict | None = None) -> dict:
    ctx = get_context()
    worker = self.request.hostname or "unknown"
    deadline = time.monotonic() + _DB_OUTAGE_WAIT
    delay = 0.5
    while True:
        try:
            outcome = process_batch(ctx, job_id=job_id, batch=batch, inline=inline, worker=worker)
            return outcome.__dict__
        except (OperationalError, DBAPIError) as exc:
            if not _is_outage(exc) or time.monotonic() > deadline:
                return _retry_or_give_up(
                    self, ctx, job_id=job_id, batch=batch, exc=exc, worker=worker
                )
            log.warning("database unavailable (%s); retrying batch %s in %.1fs",
                        exc.__class__.__name__, batch, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
        except Exception as exc:  # noqa: BLE001 - any failure counts against the batch
            return _retry_or_give_up(self, ctx, job_id=job_id, batch=batch, exc=exc, worker=worker)


def _is_outage(exc: DBAPIError) -> bool:
    return bool(exc.connection_invalidated) or isinstance(exc, OperationalError)


def _retry_or_give_up(
    self: Task, ctx, *, job_id: str, batch: int, exc: Exception, worker: str
) -> dict:
    """Retry with backoff while the batch has attempts left; then store error rows."""
    from db.models import Job
    from db.queries import batch_attempts, pending_images

    try:
        with ctx.sessions() as session:
            job = session.get(Job, job_id)
            images = [
                PendingImage(*row) for row in pending_images(session, job_id=job_id, batch=batch)
            ]
            attempts = batch_attempts(session, job_id=job_id, batch=batch)
            session.expunge_all()
    except (OperationalError, DBAPIError):
        # Still no database: retrying is the only way to keep the batch (a task that
        # raises is acknowledged, and its batch would wait for `resume`).
        raise self.retry(exc=exc, countdown=30) from None
    if job is None or not images:
        return {"job_id": job_id, "batch": batch, "skipped": True}
    if attempts >= ctx.settings.max_attempts:
        reason = f"gave up after {attempts} attempts: {exc.__class__.__name__}: {exc}"
        give_up_batch(ctx, ClaimedBatch(job, batch, images, attempts), worker=worker, reason=reason)
        log.error("batch %s of job %s: %s", batch, job_id, reason)
        return {"job_id": job_id, "batch": batch, "errors": len(images)}
    # Below the visibility timeout, or Redis would hand the waiting retry to another worker.
    countdown = min(2**attempts, 60, max(1, ctx.settings.visibility_timeout // 2))
    log.warning("batch %s of job %s failed (%s); retry in %ss", batch, job_id, exc, countdown)
    raise self.retry(exc=exc, countdown=countdown)
