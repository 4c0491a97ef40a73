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
from signdigits.worker.thresholds import ModelRead, models_that_read

STATUS_LIMIT = 50  # jobs `status` lists, newest first


def print_status(jobs, *, settings: Settings, sessions: sessionmaker[Session]) -> None:
    total_jobs = None
    with sessions() as session:
        if jobs is None:
            jobs = list_jobs(session, limit=STATUS_LIMIT)
            total_jobs = session.scalar(select(func.count()).select_from(Job))
        summaries = [summarize_job(session, job=session.merge(j),
                                   stall_seconds=settings.stall_seconds) for j in jobs]
        reads = models_that_read(settings, session, [s.job for s in summaries])
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
            Text(model_cell(s.job, reads[s.job.id])),
            s.job.created_at.strftime("%Y-%m-%d %H:%M:%S"), Text(printable(s.job.root)),
        )
    output.print(table)
    for s in summaries:  # a line each: the table has no room for a URL and its answers
        if (line := describe_webhook(s.job)) is not None:
            output.print(f"job {s.job.id}: {printable(line)}", soft_wrap=True, markup=False)
        if (line := models_line(s.job, reads[s.job.id])) is not None:
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
    waiting = [s for s in summaries if not s.state.finished and s.pending]
    if waiting and _no_worker_online(settings):
        output.print(f"no worker is online (no heartbeat on the broker): "
                     f"{'the job waits' if len(waiting) == 1 else 'the jobs wait'} until one "
                     "starts (`signdigits worker`)", soft_wrap=True, markup=False)


def _no_worker_online(settings: Settings) -> bool:
    """True only when the broker answered and no worker's heartbeat is fresh on it."""
    if not settings.broker_url:
        return False  # `run`'s and `serve`'s own stacks: their workers are theirs
    from signdigits.broker.app import create_app
    from signdigits.broker.liveness import workers_online

    try:
        return not workers_online(create_app(settings))
    except Exception:  # noqa: BLE001 - a status without the line beats no status
        return False


def several_models(job: Job, reads: list[ModelRead]) -> bool:
    """Other models than the one it was submitted with read the job (one was promoted)."""
    return len(reads) > 1 or any(r.version != job.model_version for r in reads)


def model_cell(job: Job, reads: list[ModelRead]) -> str:
    """The table's model, printable: the job's, or a line per model that read it with the
    images it read."""
    if not several_models(job, reads):
        return printable(job.model_version)
    return "\n".join(f"{printable(r.version)} ({r.images:,})" for r in reads)


def _images(n: int) -> str:
    return f"{n:,} image{'' if n == 1 else 's'}"


def models_line(job: Job, reads: list[ModelRead]) -> str | None:
    """Which models read the job and the threshold each applied, when not only its own."""
    if not several_models(job, reads):
        return None
    if job.threshold_from_model:
        each = "; ".join(f"{r.version} {_images(r.images)}, threshold "
                         + ("unknown (its files are gone)" if r.threshold is None
                            else f"{r.threshold:g}") for r in reads)
        rule = "each flagging by its own default threshold"
    else:
        each = "; ".join(f"{r.version} {_images(r.images)}" for r in reads)
        rule = f"every one flagging by the threshold given, {job.threshold:g}"
    return (f"read by {len(reads)} model{'s' if len(reads) != 1 else ''} (a model was "
            f"promoted after it was submitted with {job.model_version}), {rule}: {each}")


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
