"""A job's webhook in SQL: who sends it (one claim per job), each attempt, and what the
workers' reconciler picks up.

The claim is one ``UPDATE jobs ... WHERE webhook_state = 'pending' AND <the job ended>``:
however many processes store a job's last rows, cancel it, or finish its walk at once,
the database lets exactly one of them change the row, and only that one sends the
delivery task. Each attempt is taken the same way (``webhook_attempts`` must still be
the number the task was sent with), so two copies of one task never post at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from signdigits.config.webhooks import shown_url
from signdigits.db.models import Image, ImageStatus, Job, as_utc, utcnow

PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"
STATES = (PENDING, SENDING, DELIVERED, FAILED)
STOPPED = "stopped by an operator"  # a failed webhook's last status after `webhook stop`


def _ended():
    """SQL: the job ended (failed, cancelled, or walked whole with no image pending)."""
    pending = exists().where(Image.job_id == Job.id, Image.status == ImageStatus.PENDING)
    return or_(Job.failure.is_not(None), Job.cancelled_at.is_not(None),
               and_(Job.submitted_at.is_not(None), ~pending))


def claim_webhook(session: Session, *, job_id: str) -> bool:
    """Whether this call claimed the job's webhook: it has one, it ended, and no one
    claimed it before. Call it after committing the change that may have ended the job
    (the last committer then sees every other's rows); send the task only on True."""
    now = utcnow()
    result = cast(CursorResult, session.execute(
        update(Job).where(Job.id == job_id, Job.webhook_state == PENDING, _ended())
        .values(webhook_state=SENDING, webhook_claimed_at=now, webhook_next_at=now,
                webhook_attempts=0)
        .execution_options(synchronize_session=False)))
    return result.rowcount == 1


def take_attempt(session: Session, *, job_id: str, attempts: int,
                 lease: timedelta) -> Job | None:
    """The job, when this task may make attempt ``attempts + 1`` now (counted here);
    None when another copy of the task took it, or the webhook is settled."""
    result = cast(CursorResult, session.execute(
        update(Job).where(Job.id == job_id, Job.webhook_state == SENDING,
                          Job.webhook_attempts == attempts)
        .values(webhook_attempts=attempts + 1, webhook_next_at=utcnow() + lease)
        .execution_options(synchronize_session=False)))
    if result.rowcount != 1:
        return None
    return session.get(Job, job_id, populate_existing=True)


def record_attempt(session: Session, *, job_id: str, claimed_at: datetime | None, status: str,
                   delivered: bool, give_up: bool, next_at: datetime | None) -> bool:
    """What the attempt got (``"200"``, ``"503"``, ``"timeout"``...), and what is next;
    whether it was recorded. Not when the webhook changed while the attempt was made: an
    operator stopped it, or sent it again (a new claim time, maybe a new URL), and an
    attempt of the old claim must not settle the new one (its deadline is the old one)."""
    values: dict = {"webhook_last_status": status[:500], "webhook_next_at": next_at}
    if delivered:
        values.update(webhook_state=DELIVERED, webhook_delivered_at=utcnow())
    elif give_up:
        values.update(webhook_state=FAILED)
    result = cast(CursorResult, session.execute(
        update(Job).where(Job.id == job_id, Job.webhook_state == SENDING,
                          Job.webhook_claimed_at == claimed_at)
        .values(values).execution_options(synchronize_session=False)))
    return result.rowcount == 1


def ended_unclaimed(session: Session) -> list[str]:
    """Jobs that ended with their webhook still pending: the process that ended them
    could not send the task (a `cancel` without a broker, a crash between its commit and
    its claim). The reconciler claims them."""
    return list(session.scalars(select(Job.id).where(Job.webhook_state == PENDING, _ended())))


def lost_deliveries(session: Session, *, grace: timedelta) -> list[tuple[str, int]]:
    """(job id, attempts) of deliveries whose next attempt is ``grace`` overdue: their
    task was lost (a claim committed, then its process died before sending it)."""
    rows = session.execute(select(Job.id, Job.webhook_attempts, Job.webhook_next_at)
                           .where(Job.webhook_state == SENDING))
    cutoff = utcnow() - grace  # compared here: SQLite keeps times as text without a zone
    return [(job_id, attempts or 0) for job_id, attempts, due in rows
            if due is None or as_utc(due) < cutoff]


def webhooks_by_state(session: Session) -> dict[str, int]:
    """Jobs by webhook state, every state listed: what /metrics shows (the attempts, a
    counter, are read with the deleted jobs' by :func:`db.metrics.image_counts`)."""
    by_state = {state: 0 for state in STATES}
    for state, count in session.execute(
            select(Job.webhook_state, func.count())
            .where(Job.webhook_state.is_not(None)).group_by(Job.webhook_state)):
        by_state[str(state)] = int(count)
    return by_state


def describe_webhook(job: Job) -> str | None:
    """One line on the job's webhook for ``status``, ``run`` and the job page; None
    without one. The URL is shown without credentials or query (a token may be there)."""
    if job.webhook_state is None:
        return None
    where = shown_url(job.webhook_url or "")
    tries = job.webhook_attempts or 0
    last = f", last answer {job.webhook_last_status}" if job.webhook_last_status else ""
    if job.webhook_state == PENDING:
        return f"webhook {where}: sent when the job ends"
    if job.webhook_state == SENDING:
        return f"webhook {where}: sending ({tries} attempts{last})"
    if job.webhook_state == DELIVERED:
        at = as_utc(job.webhook_delivered_at).strftime("%Y-%m-%d %H:%M:%S UTC") \
            if job.webhook_delivered_at else "?"
        return f"webhook {where}: delivered {at} ({tries} attempts{last})"
    if job.webhook_last_status == STOPPED:
        return f"webhook {where}: {STOPPED} after {tries} attempts"
    return f"webhook {where}: failed after {tries} attempts{last}"


class WebhookUnchanged(Exception):
    """A webhook ``webhook send`` or ``webhook stop`` cannot change; one line says why."""


def send_again(session: Session, *, job_id: str, url: str | None) -> int | None:
    """The job's webhook made to send again (``url``: a new address, already checked):
    the attempt count its task is sent with when the job ended, its webhook now
    ``sending`` with a new deadline; None when the job has not ended (its webhook is sent
    when it ends). A delivered webhook is sent again too: its receiver may have lost it.
    Attempts are never reset: ``/metrics`` counts them, and a counter never falls. A
    webhook already sending is sent now, not at its backed-off time: the copy of the
    task that waits finds its count taken and stops (:func:`take_attempt`)."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise WebhookUnchanged(f"no job {job_id}")
    if url is None and job.webhook_url is None:
        raise WebhookUnchanged(f"job {job_id} has no webhook; give it a URL to send one")
    ended = session.scalar(select(_ended()).where(Job.id == job_id))
    if url is not None:
        job.webhook_url = url
    if not ended:
        if url is None and job.webhook_state == PENDING:
            raise WebhookUnchanged(f"job {job_id} has not ended; its webhook is sent when it "
                                   "does")
        job.webhook_state = PENDING  # a webhook stopped while the job ran is wanted again
        return None
    job.webhook_state, job.webhook_claimed_at, job.webhook_next_at = SENDING, utcnow(), None
    job.webhook_last_status = None  # the old claim's answer, maybe from another URL
    job.webhook_attempts = job.webhook_attempts or 0
    return job.webhook_attempts


def stop_webhook(session: Session, *, job_id: str) -> str:
    """The job's webhook given up now: no attempt follows (one in flight is not recorded,
    :func:`record_attempt`); the state it was in. Refused for one already settled."""
    for was in (SENDING, PENDING):
        # Conditional, as every change here: SQLite's SELECT ... FOR UPDATE locks nothing,
        # and a delivery recorded meanwhile must stay delivered.
        result = cast(CursorResult, session.execute(
            update(Job).where(Job.id == job_id, Job.webhook_state == was)
            .values(webhook_state=FAILED, webhook_last_status=STOPPED, webhook_next_at=None)
            .execution_options(synchronize_session=False)))
        if result.rowcount == 1:
            return was
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise WebhookUnchanged(f"no job {job_id}")
    raise WebhookUnchanged(f"job {job_id}: " + (describe_webhook(job) or "no webhook")
                           + "; nothing to stop")


def mark_resent(session: Session, *, job_id: str) -> None:
    """A lost delivery's task was sent again now: the next re-send waits a grace again."""
    session.execute(update(Job).where(Job.id == job_id, Job.webhook_state == SENDING)
                    .values(webhook_next_at=utcnow())
                    .execution_options(synchronize_session=False))
