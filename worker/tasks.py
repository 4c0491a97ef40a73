"""The Celery task: a thin shell around :func:`worker.batch.process_batch`.

It carries out what :func:`worker.retries.decide` says on failure: a database outage is
waited out with the message still unacknowledged; any other error is retried with
backoff until the batch has used its attempts, after which its images get error rows and
the job moves on. A batch of a job this worker's database does not know is put back on
the queue, never acknowledged as done.
"""

from __future__ import annotations

import logging
import time

from celery import Task
from celery.exceptions import Reject
from sqlalchemy.exc import DBAPIError, OperationalError

from signdigits.broker.messages import TASK_NAME
from signdigits.db.session import shown_url
from signdigits.files.objects import StorageNotConfigured, StorageUnavailable
from signdigits.worker.app import app
from signdigits.worker.batch import (
    ClaimedBatch,
    Delivery,
    PendingImage,
    UnknownJob,
    give_up_batch,
    process_batch,
)
from signdigits.worker.context import WorkerContext, get_context
from signdigits.worker.retries import Action, Failure, decide
from signdigits.worker.unknown_jobs import report_unknown_job

log = logging.getLogger(__name__)


@app.task(
    name=TASK_NAME,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
)
def classify_batch(self: Task, job_id: str, batch: int, inline: dict | None = None) -> dict:
    ctx = get_context()
    outcome = _classify(self, ctx, job_id=job_id, batch=batch, inline=inline)
    if not outcome.get("skipped") and "dropped" not in outcome:
        _webhook_if_ended(self, ctx, job_id)
    return outcome


def _webhook_if_ended(self: Task, ctx: WorkerContext, job_id: str) -> None:
    """Rows were stored: if they were the job's last, claim and send its webhook. A
    failure here costs the batch nothing (its rows are committed): the reconciler claims
    an ended job's webhook that nobody did."""
    from signdigits.worker.webhook import send_if_ended

    try:
        send_if_ended(self.app, ctx.sessions, job_id)
    except Exception as exc:  # noqa: BLE001 - the reconciler's pass sends it instead
        log.warning("job %s: could not claim or send its webhook now (%s); the reconciler "
                    "will", job_id, exc)


def _classify(self: Task, ctx: WorkerContext, *, job_id: str, batch: int,
              inline: dict | None) -> dict:
    worker = self.request.hostname or "unknown"
    outage_since: float | None = None
    delivery = Delivery()
    while True:
        try:
            outcome = process_batch(ctx, job_id=job_id, batch=batch, inline=inline,
                                    worker=worker, delivery=delivery)
            return outcome.__dict__
        except UnknownJob:
            return _put_back(self, ctx, job_id=job_id, batch=batch, worker=worker)
        except StorageNotConfigured as exc:
            return _put_back(self, ctx, job_id=job_id, batch=batch, worker=worker,
                             cannot_read=str(exc))
        except (OperationalError, DBAPIError, StorageUnavailable) as exc:
            if not _is_outage(exc):
                return _after_failure(self, ctx, job_id=job_id, batch=batch, exc=exc,
                                      worker=worker, failure=Failure.ERROR)
            outage_since = outage_since or time.monotonic()
            waited = time.monotonic() - outage_since
            decision = decide(tries=None, failure=Failure.OUTAGE, settings=ctx.settings,
                              waited=waited)
            if decision.action is not Action.WAIT:
                return _after_failure(self, ctx, job_id=job_id, batch=batch, exc=exc,
                                      worker=worker, failure=Failure.OUTAGE, waited=waited)
            if isinstance(exc, StorageUnavailable):  # an s3:// job's storage: its own words
                log.warning("object storage unavailable (%s); retrying batch %s in %.1fs",
                            exc, batch, decision.delay)
            else:
                log.warning("database unavailable (%s); retrying batch %s in %.1fs",
                            exc.__class__.__name__, batch, decision.delay)
            time.sleep(decision.delay)
        except Exception as exc:  # noqa: BLE001 - any failure counts against the batch
            return _after_failure(self, ctx, job_id=job_id, batch=batch, exc=exc,
                                  worker=worker, failure=Failure.ERROR)


def _is_outage(exc: DBAPIError | StorageUnavailable) -> bool:
    if isinstance(exc, StorageUnavailable):
        return True
    return bool(exc.connection_invalidated) or isinstance(exc, OperationalError)


def _after_failure(
    self: Task, ctx: WorkerContext, *, job_id: str, batch: int, exc: Exception, worker: str,
    failure: Failure, waited: float = 0.0,
) -> dict:
    """Retry with backoff while the batch has attempts left; then store error rows."""
    from signdigits.db.batches import batch_attempts, pending_images
    from signdigits.db.models import Job

    try:
        with ctx.sessions() as session:
            job = session.get(Job, job_id)
            images = [
                PendingImage(*row) for row in pending_images(session, job_id=job_id, batch=batch)
            ]
            tries: int | None = batch_attempts(session, job_id=job_id, batch=batch)
            session.expunge_all()
    except (OperationalError, DBAPIError):
        # Still no database: retrying is the only way to keep the batch (a task that
        # raises is acknowledged, and its batch would wait for `resume`).
        job, images, tries = None, [], None
    if tries is not None and (job is None or not images):
        return {"job_id": job_id, "batch": batch, "skipped": True}
    decision = decide(tries=tries, failure=failure, settings=ctx.settings, waited=waited,
                      detail=f"{exc.__class__.__name__}: {exc}")
    if decision.action is Action.GIVE_UP:
        # decide gives up only on counted tries, and a counted batch's job was read above.
        assert job is not None and tries is not None
        give_up_batch(ctx, ClaimedBatch(job, batch, images, tries), worker=worker,
                      reason=decision.reason)
        log.error("batch %s of job %s: %s", batch, job_id, decision.reason)
        return {"job_id": job_id, "batch": batch, "errors": len(images)}
    log.warning("batch %s of job %s failed (%s); retry in %ss", batch, job_id, exc,
                decision.delay)
    raise self.retry(exc=exc, countdown=decision.delay)


def _put_back(self: Task, ctx: WorkerContext, *, job_id: str, batch: int, worker: str,
              cannot_read: str | None = None) -> dict:
    """A job this worker cannot take: loud, and the batch stays queued for one that can.

    Its database has no such job (it is not the producer's), or ``cannot_read`` says why it
    cannot read the job's objects (no S3 credentials on this machine). Acknowledging it
    would lose the batch for the workers that can; putting it back at once would let this
    worker take it again in a loop. So: an error naming the cause, a report on the broker
    that `signdigits status` shows, a pause, then the message goes back to the queue. Only
    after ``UNKNOWN_JOB_PATIENCE`` (no worker took the job all that time) is it dropped,
    with an error; its rows stay pending, for `resume --lost` once a worker can.
    """
    database = shown_url(ctx.settings.database_url)
    try:
        waited = report_unknown_job(self.app.conf.broker_url, job_id=job_id, worker=worker,
                                    database=database, cannot_read=cannot_read)
    except Exception as exc:  # noqa: BLE001 - the report is advice; keeping the batch is not
        log.warning("could not report job %s on the broker: %s", job_id, exc)
        waited = 0.0
    cause = (f"this worker cannot read job {job_id}'s objects: {cannot_read}" if cannot_read
             else f"job {job_id} is not in database {database}")
    decision = decide(tries=None, failure=Failure.UNKNOWN_JOB, settings=ctx.settings,
                      waited=waited, detail=cause)
    if decision.action is Action.GIVE_UP:
        log.error("batch %s of job %s dropped: %s", batch, job_id, decision.reason)
        return {"job_id": job_id, "batch": batch, "dropped": decision.reason}
    if cannot_read:
        log.error("batch %s: %s; putting the batch back on the queue in %.0f s for a worker "
                  "that can", batch, cause, decision.delay)
    else:
        log.error("batch %s of job %s: no such job in this worker's database %s (is "
                  "SIGNDIGITS_DATABASE_URL the producer's?); putting the batch back on the "
                  "queue in %.0f s for a worker that knows the job", batch, job_id, database,
                  decision.delay)
    time.sleep(decision.delay)
    raise Reject(cause, requeue=True)
