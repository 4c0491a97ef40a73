"""``signdigits webhook send JOB | stop JOB``: a job's webhook after the fact.

A receiver that was down past the deadline, a URL mistyped at submit, a job submitted
without one, or a delivery the receiver lost: ``send`` posts the job's event again (to
``--url`` when given). A receiver that should not be called any more: ``stop``.
"""

from __future__ import annotations

import typer

from signdigits.cli.console import FAILURE, USAGE, console, fail
from signdigits.cli.jobs import JOB_HELP

webhook_app = typer.Typer(help="A job's webhook: send it again, or stop it.",
                          no_args_is_help=True)


@webhook_app.command("send")
def send_command(
    job: str = typer.Argument(..., help=JOB_HELP),
    url: str | None = typer.Option(None, "--url", metavar="URL",
                                   help="POST it here from now on (checked as at submit)"),
) -> None:
    """POST the ended job's signed event again (to --url when given).

    Sent with a new deadline and the same webhook-id (a receiver that handled it drops
    it). For a job still running, --url sets where it goes when it ends.
    """
    from signdigits.broker.app import configured_app
    from signdigits.cli.preflight import database_for_reading, job_or_fail, settings_or_fail
    from signdigits.config.webhooks import WebhookRefused
    from signdigits.db.models import Job
    from signdigits.db.webhooks import WebhookUnchanged, describe_webhook
    from signdigits.producer.webhooks import (
        BY_THE_RECONCILER,
        QUEUED,
        WHEN_IT_ENDS,
        send_webhook_again,
    )

    settings = settings_or_fail()
    sessions = database_for_reading(settings)
    found = job_or_fail(sessions, job)
    app = configured_app(settings)  # None: the running stack's reconciler sends it
    try:
        became = send_webhook_again(app, sessions, settings, job_id=found.id, url=url)
    except (WebhookRefused, WebhookUnchanged) as exc:
        fail(str(exc), code=USAGE if isinstance(exc, WebhookRefused) else FAILURE)
    with sessions() as session:
        line = describe_webhook(session.get_one(Job, found.id))
    after = {QUEUED: "; queued for the workers",
             BY_THE_RECONCILER: "; the workers of the running stack send it within "
                                f"{settings.stall_seconds} s (no broker answered here)",
             WHEN_IT_ENDS: ""}[became]
    console.print(f"job {found.id}: {line}{after}", markup=False)


@webhook_app.command("stop")
def stop_command(job: str = typer.Argument(..., help=JOB_HELP)) -> None:
    """Give the job's webhook up now: no further attempt is made."""
    from signdigits.cli.preflight import database_for_reading, job_or_fail, settings_or_fail
    from signdigits.db.webhooks import WebhookUnchanged, stop_webhook

    settings = settings_or_fail()
    sessions = database_for_reading(settings)
    found = job_or_fail(sessions, job)
    try:
        with sessions.begin() as session:
            was = stop_webhook(session, job_id=found.id)
    except WebhookUnchanged as exc:
        fail(str(exc))
    console.print(f"job {found.id}: webhook stopped (it was {was}); no attempt follows",
                  markup=False)
