"""The submitting side of a job's webhook: the URL checked before anything is recorded,
and the claim made when the walk itself is what ends the job (its images were all stored
while it walked), and an operator's ``webhook send`` again. The worker side, and why one
claim: worker/webhook.py."""

from __future__ import annotations

import logging

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from signdigits.broker.sending import send_webhook
from signdigits.config.settings import Settings
from signdigits.config.webhooks import WebhookRefused, check_webhook_url
from signdigits.db.webhooks import claim_webhook, mark_resent, send_again

log = logging.getLogger(__name__)


def job_webhook(webhook: str | None, settings: Settings) -> str | None:
    """The webhook URL a new job records (``webhook``, else SIGNDIGITS_WEBHOOK_URL), or
    None; :class:`WebhookRefused` (one line) for a URL the server would not call."""
    url = webhook.strip() if webhook else settings.webhook_url
    if not url:
        return None
    check_webhook_url(url, allowed_hosts=settings.webhook_allowed_hosts,
                      production=settings.environment == "production")
    if settings.webhook_secret is None:
        raise WebhookRefused("a webhook needs SIGNDIGITS_WEBHOOK_SECRET (whsec_<base64>) to "
                             "be signed with")
    return url


def send_if_ended(app: Celery, sessions: sessionmaker[Session], job_id: str) -> None:
    """Claim the job's webhook if it has ended, and send its task. Never raises: a
    webhook claimed by nobody is claimed by the workers' reconciler."""
    try:
        with sessions.begin() as session:
            claimed = claim_webhook(session, job_id=job_id)
        if claimed:
            send_webhook(app, job_id)
    except Exception as exc:  # noqa: BLE001 - the job's own record is already complete
        log.warning("job %s: its webhook could not be claimed or sent now (%s); the "
                    "workers' reconciler will", job_id, exc)


def send_webhook_again(app: Celery | None, sessions: sessionmaker[Session], settings: Settings,
                       *, job_id: str, url: str | None) -> str:
    """The job's webhook sent again (to ``url`` when given, checked as at submit); what
    became of it: :data:`QUEUED` (its task is on the broker), :data:`WHEN_IT_ENDS` (the
    job has not ended), or :data:`BY_THE_RECONCILER` (no broker here, ``app`` None, or it
    did not answer: the workers' reconciler of the stack that runs sends it within
    SIGNDIGITS_STALL_SECONDS, the state being recorded already). :class:`WebhookRefused`
    for a URL the server would not call; :class:`db.webhooks.WebhookUnchanged` for a job
    without one."""
    if url is not None and not url.strip():
        raise WebhookRefused("the webhook URL given is empty")
    checked = job_webhook(url, settings) if url is not None else None
    with sessions.begin() as session:
        attempts = send_again(session, job_id=job_id, url=checked)
    if attempts is None:
        return WHEN_IT_ENDS
    if app is None:
        return BY_THE_RECONCILER
    try:
        send_webhook(app, job_id, attempts=attempts)
    except Exception as exc:  # noqa: BLE001 - recorded: the reconciler sends it
        log.warning("job %s: its webhook's task could not be sent now (%s); the workers' "
                    "reconciler will", job_id, exc)
        return BY_THE_RECONCILER
    with sessions.begin() as session:
        mark_resent(session, job_id=job_id)  # sent: the reconciler waits its grace again
    return QUEUED


QUEUED, WHEN_IT_ENDS, BY_THE_RECONCILER = "queued", "when it ends", "by the reconciler"
