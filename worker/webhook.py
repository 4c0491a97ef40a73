"""A job's webhook: claimed once when the job ends, then posted, signed, until a 2xx or
the deadline (docs/webhooks.md).

Who sends it: whoever commits the change that ends the job (the worker that stores its
last pending rows, ``cancel``, the producer that finishes a walk whose images were all
stored meanwhile) calls :func:`send_if_ended` after its commit; the claim in SQL
(:func:`db.webhooks.claim_webhook`) lets exactly one of them send the task. The task runs
on the batch queue, in the same workers; the POST itself is made from a thread of the
worker's process (at most four at once), so a slow receiver holds no pool process. Each
attempt is taken in SQL too, so a copy of the task (re-sent by the reconciler, or a
message redelivered after its worker died) never posts at the same time as another; a
worker that dies after the receiver answered but before the answer was recorded makes
the next attempt post the same event again, with the same ``webhook-id``, which the
specification tells receivers to drop.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import unquote, urlsplit

from celery import Celery, Task
from sqlalchemy.orm import Session, sessionmaker

from signdigits.broker.messages import WEBHOOK_TASK_NAME
from signdigits.broker.sending import send_webhook
from signdigits.config.settings import Settings
from signdigits.config.webhooks import (
    Address,
    WebhookRefused,
    check_webhook_url,
    shown_url,
    signature,
    signing_key,
)
from signdigits.db.models import Job, as_utc, utcnow
from signdigits.db.progress import JobSummary, summarize_job
from signdigits.db.webhooks import claim_webhook, record_attempt, take_attempt
from signdigits.worker.app import app
from signdigits.worker.context import get_context
from signdigits.worker.thresholds import ModelRead, models_that_read

log = logging.getLogger(__name__)

ATTEMPT_SECONDS = 10.0  # a receiver that has not answered by then has failed this attempt
MAX_BACKOFF_SECONDS = 600.0
_ANSWER_BYTES = 64 * 1024  # read, then dropped: the status is the answer


def send_if_ended(celery: Celery, sessions: sessionmaker[Session], job_id: str) -> bool:
    """Claim the job's webhook if it just ended, and send its task; whether this did."""
    with sessions.begin() as session:
        claimed = claim_webhook(session, job_id=job_id)
    if claimed:
        send_webhook(celery, job_id)
        log.info("job %s ended: its webhook is queued", job_id)
    return claimed


def backoff(attempt: int, *, visibility_timeout: int) -> float:
    """Seconds before attempt ``attempt + 1``: 1, 2, 4... up to 10 minutes, and under half
    the visibility timeout (a countdown past it makes Redis deliver the message twice)."""
    return float(min(2 ** (attempt - 1), MAX_BACKOFF_SECONDS, max(1, visibility_timeout // 2)))


@app.task(name=WEBHOOK_TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)
def deliver_webhook(self: Task, job_id: str, attempts: int) -> dict:
    ctx = get_context()
    settings, sessions = ctx.settings, ctx.sessions
    with sessions.begin() as session:
        job = take_attempt(session, job_id=job_id, attempts=attempts,
                           lease=timedelta(seconds=ATTEMPT_SECONDS + 5))
        if job is None:
            return {"job_id": job_id, "skipped": True}
        summary = summarize_job(session, job=job, stall_seconds=settings.stall_seconds)
        models = models_that_read(settings, session, [job])[job.id]
        session.expunge(job)
    attempt = Attempt(self.app, settings, sessions, job, summary, models, attempts + 1)
    if _POSTERS.acquire(blocking=False):
        # Posted from a thread of this process, so a receiver slow to answer (up to
        # ATTEMPT_SECONDS) holds no pool process: three jobs' webhooks to a receiver that
        # never answered had taken a one-process worker from 87 to 20 images a second. The
        # attempt is taken in SQL: if this process dies mid-POST, its lease runs out and
        # the reconciler sends the attempt again (lost_deliveries).
        threading.Thread(target=_in_thread, args=(attempt,), daemon=True,
                         name=f"webhook-{job_id[:8]}").start()
        return {"job_id": job_id, "attempt": attempt.number, "posting": True}
    return attempt.make()  # every posting thread busy: this one waits in the task


_POSTERS = threading.BoundedSemaphore(4)  # POSTs in flight per process, off the pool


def _in_thread(attempt: Attempt) -> None:
    try:
        attempt.make()
    except Exception:  # noqa: BLE001 - its lease runs out; the reconciler sends it again
        log.exception("job %s: webhook attempt %d failed", attempt.job.id, attempt.number)
    finally:
        _POSTERS.release()


@dataclass(frozen=True)
class Attempt:
    """One POST of a job's webhook, taken in SQL: made, recorded, and the next scheduled."""

    celery: Celery
    settings: Settings
    sessions: sessionmaker[Session]
    job: Job
    summary: JobSummary
    models: list[ModelRead]
    number: int

    def make(self) -> dict:
        job, settings, attempt = self.job, self.settings, self.number
        status, delivered, final = post_event(job, self.summary, settings, self.models)
        claimed_at = as_utc(job.webhook_claimed_at or utcnow())
        expired = (utcnow() - claimed_at).total_seconds() >= settings.webhook_deadline
        give_up = not delivered and (final or expired)
        delay = backoff(attempt, visibility_timeout=settings.visibility_timeout)
        next_at = None if delivered or give_up else utcnow() + timedelta(seconds=delay)
        with self.sessions.begin() as session:
            recorded = record_attempt(session, job_id=job.id, claimed_at=job.webhook_claimed_at,
                                      status=status, delivered=delivered, give_up=give_up,
                                      next_at=next_at)
        where = shown_url(job.webhook_url or "")
        if not recorded:  # stopped or sent again meanwhile: the new claim goes on alone
            log.info("job %s: webhook attempt %d to %s got %s after its webhook was stopped "
                     "or sent again; not recorded", job.id, attempt, where, status)
        elif delivered:
            log.info("job %s: webhook delivered to %s (attempt %d, %s)", job.id, where,
                     attempt, status)
        elif give_up:
            log.error("job %s: webhook to %s given up after %d attempts: %s", job.id, where,
                      attempt, status)
        else:
            log.warning("job %s: webhook to %s failed (%s); attempt %d in %.0f s", job.id,
                        where, status, attempt + 1, delay)
            send_webhook(self.celery, job.id, attempts=attempt, countdown=delay)
        return {"job_id": job.id, "attempt": attempt, "status": status,
                "delivered": delivered}


def event_body(summary: JobSummary, models: list[ModelRead]) -> bytes:
    """The event: the Standard Webhooks envelope (type, timestamp, data) around the job's
    summary and the models that read it (more than one when a model was promoted while
    it ran), the same bytes on every attempt (the job has ended: nothing in it changes)."""
    job = summary.job
    ended = job.cancelled_at or summary.last_finished or job.webhook_claimed_at or job.created_at
    data = {
        "id": job.id, "state": str(summary.state), "folder": job.root,
        "total_images": summary.total, "done": summary.done,
        "below_threshold": summary.below_threshold, "errors": summary.errors,
        "cancelled": summary.cancelled, "pending": summary.pending,
        "images_per_second": round(summary.rate, 2) if summary.rate else None,
        "threshold": job.threshold, "model_version": job.model_version,
        "models": [{"version": m.version, "images": m.images, "threshold": m.threshold}
                   for m in models],
        "created_at": as_utc(job.created_at).isoformat(), "ended_at": as_utc(ended).isoformat(),
        "failure": job.failure,
    }
    event = {"type": "job.ended", "timestamp": as_utc(ended).isoformat(), "data": data}
    return json.dumps(event, separators=(",", ":")).encode()


def post_event(job: Job, summary: JobSummary, settings: Settings, models: list[ModelRead]
               ) -> tuple[str, bool, bool]:
    """One attempt: (what it got, delivered, final: no later attempt can do better)."""
    url = job.webhook_url or ""
    if settings.webhook_secret is None:
        return "not sent: SIGNDIGITS_WEBHOOK_SECRET is not set on this worker", False, False
    try:
        addresses = check_webhook_url(url, allowed_hosts=settings.webhook_allowed_hosts,
                                      production=settings.environment == "production")
    except WebhookRefused as exc:
        # A name that no longer resolves may again; an address or host refused will not.
        return f"not sent: {exc}", False, "does not resolve" not in str(exc)
    body = event_body(summary, models)
    timestamp = int(time.time())
    message_id = f"msg_{job.id}"  # one event per job: every attempt and copy shares it
    key = signing_key(settings.webhook_secret.get_secret_value())
    headers = {
        "content-type": "application/json", "user-agent": "signdigits-webhook",
        "webhook-id": message_id, "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, message_id=message_id, timestamp=timestamp,
                                       body=body),
    }
    try:
        code = _post(url, addresses[0], body, headers)
    except TimeoutError:
        return "timeout", False, False
    except (OSError, http.client.HTTPException) as exc:
        return f"{exc.__class__.__name__}: {exc}"[:200], False, False
    return str(code), 200 <= code < 300, False


def _post(url: str, address: Address, body: bytes, headers: dict[str, str]) -> int:
    """POST to ``address`` (the one checked), with the URL's host as Host and as the TLS
    name; redirects are not followed (a 3xx is a failed attempt)."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=ATTEMPT_SECONDS)

    def connect_to_checked(where, timeout=None, source_address=None):
        return socket.create_connection((str(address), where[1]), timeout, source_address)

    connection._create_connection = connect_to_checked  # type: ignore[attr-defined]
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers = {**headers, "authorization": "Basic "
                   + base64.b64encode(credentials.encode()).decode()}
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, body=body, headers=headers)
        answer = connection.getresponse()
        answer.read(_ANSWER_BYTES)
        return answer.status
    finally:
        connection.close()
