"""``signdigits status``: the jobs as a table, and the workers that lack a job's record."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from signdigits.cli.console import console, output
from signdigits.config.settings import Settings
from signdigits.db.jobs import list_jobs
from signdigits.db.models import Job
from signdigits.db.progress import summarize_job
from signdigits.db.webhooks import describe_webhook
from signdigits.files.names import printable

STATUS_LIMIT = 50  # jobs `status` lists, newest first


def print_status(jobs, *, settings: Settings, sessions: sessionmaker[Session]) -> None:
    total_jobs = None
    with sessions() as session:
        if jobs is None:
            jobs = list_jobs(session, limit=STATUS_LIMIT)
            total_jobs = session.scalar(select(func.count()).select_from(Job))
        summaries = [summarize_job(session, job=session.merge(j),
                                   stall_seconds=settings.stall_seconds) for j in jobs]
    if not summaries:
        console.print("no jobs yet")
        return
    reports = _unknown_job_reports(settings, [s.job.id for s in summaries
                                             if not s.state.finished])
    table = Table(show_header=True)
    for column in ("job", "name", "state", "done/total", "below thr.", "errors", "img/s", "model",
                   "created", "folder"):
        table.add_column(column)
    for s in summaries:
        rate = s.rate
        state = f"{s.state} (stalled)" if s.stalled else str(s.state)
        if s.job.failure:
            state += f": {s.job.failure}"
        elif s.state == "submission interrupted":
            why = f" ({s.job.submission_stopped})" if s.job.submission_stopped else ""
            state += f"{why}: `signdigits resume {s.job.id}` finishes it"
        if s.job.id in reports:
            state += " (a worker cannot take it, see below)"
        # Text, not markup: a folder named "[red]x" or holding escape codes prints as is.
        table.add_row(
            s.job.id, Text(printable(s.job.name)), Text(printable(state)),
            f"{s.total - s.pending - s.cancelled:,}/{s.total:,}"
            + (f", {s.cancelled:,} cancelled" if s.cancelled else ""),
            f"{s.below_threshold:,}", f"{s.errors:,}", f"{rate:,.1f}" if rate else "-",
            Text(printable(s.job.model_version)),
            s.job.created_at.strftime("%Y-%m-%d %H:%M:%S"), Text(printable(s.job.root)),
        )
    output.print(table)
    for s in summaries:  # a line each: the table has no room for a URL and its answers
        if (line := describe_webhook(s.job)) is not None:
            output.print(f"job {s.job.id}: {printable(line)}", soft_wrap=True, markup=False)
    if total_jobs is not None and total_jobs > len(summaries):
        output.print(f"the {len(summaries)} newest of {total_jobs:,} jobs; "
                     "`signdigits status JOB` shows any one")
    for job_id, found in reports.items():
        for report in found:
            why = (f"cannot read the job's objects: {report.cannot_read}" if report.cannot_read
                   else f"has no such job in its database {report.database}")
            output.print(f"job {job_id}: worker {report.worker} {why} "
                         f"({report.seconds_ago:.0f} s ago); it puts the batches back for "
                         "another worker", soft_wrap=True, markup=False)


def _unknown_job_reports(settings: Settings, job_ids: list[str]) -> dict:
    """Workers that were sent these jobs' batches but whose database has no such job.

    Read from the broker, the only thing such a worker shares with this side; without a
    broker (or if it does not answer) status shows the database's view alone.
    """
    if not settings.broker_url or not job_ids:
        return {}
    from signdigits.worker.unknown_jobs import unknown_job_reports

    try:
        return unknown_job_reports(settings.broker_url, job_ids=job_ids)
    except Exception:  # noqa: BLE001 - a status without the reports beats no status
        return {}
