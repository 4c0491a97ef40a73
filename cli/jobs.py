"""The job commands: submit, run, status, results, resume, cancel, delete."""

from __future__ import annotations

from pathlib import Path

import typer

from signdigits.cli.console import (
    INTERRUPTED,
    USAGE,
    console,
    counted,
    exit_interrupted,
    exit_promptly,
    fail,
)
from signdigits.cli.options import threshold_option
from signdigits.cli.preflight import (
    check_broker,
    database_for_reading,
    database_for_writing,
    job_or_fail,
    require_broker,
    settings_or_fail,
)

JOB_HELP = "job id, unique prefix of one, or 'latest'"
NAME_HELP = "the job's name (default: the folder's)"


FOLDER_HELP = "folder of images (searched recursively), or s3://bucket/prefix"


def submit(
    folder: str = typer.Argument(..., help=FOLDER_HELP),
    threshold: float | None = threshold_option(),
    batch_size: int | None = typer.Option(None, min=1, max=4096, help="images per task"),
    inline: bool | None = typer.Option(None, "--inline/--paths",
                                       help="ship image bytes in messages"),
    wait: bool = typer.Option(False, "--wait", help="show progress until the job finishes"),
    webhook: str | None = typer.Option(
        None, "--webhook", metavar="URL", help="POST the job's signed summary here when it "
        "ends (default: SIGNDIGITS_WEBHOOK_URL)"),
    name: str | None = typer.Option(None, "--name", help=NAME_HELP),
) -> None:
    """Record a folder as a job and enqueue its batches; prints the job id."""
    from signdigits.cli import watch

    name = _name_or_fail(name)
    settings = settings_or_fail()
    require_broker(settings, " (or `signdigits run` for a one-machine job)")
    check_broker(settings)  # before anything is recorded
    sessions = database_for_writing(settings)
    job = watch.submit(job_folder(folder), settings=settings, sessions=sessions,
                       threshold=threshold, batch_size=batch_size, inline=inline,
                       webhook=webhook, name=name)
    print(job.job_id)
    if wait:
        summary = watch.watch(job.job_id, settings=settings, sessions=sessions)
        watch.print_summary(summary, settings=settings, sessions=sessions)
    exit_promptly()


def run(
    folder: str = typer.Argument(..., help=FOLDER_HELP),
    workers: int | None = typer.Option(None, min=1, max=64, help="worker processes"),
    threshold: float | None = threshold_option(),
    batch_size: int | None = typer.Option(None, min=1, max=4096, help="images per task"),
    webhook: str | None = typer.Option(
        None, "--webhook", metavar="URL", help="POST the job's signed summary here when it "
        "ends (default: SIGNDIGITS_WEBHOOK_URL)"),
    name: str | None = typer.Option(None, "--name", help=NAME_HELP),
) -> None:
    """The whole pipeline on this machine: broker, workers, submit, progress, summary.

    The summary goes to stdout (with how to review the images below the threshold); the
    progress and the stack's lines to stderr.
    """
    from signdigits.cli import watch

    name = _name_or_fail(name)
    settings = settings_or_fail()
    sessions = database_for_writing(settings)
    code = watch.run_locally(
        job_folder(folder), settings=settings, sessions=sessions,
        workers=workers or settings.concurrency, threshold=threshold, batch_size=batch_size,
        webhook=webhook, name=name,
    )
    if code == INTERRUPTED:
        exit_interrupted()  # its workers are stopped and it said so
    raise typer.Exit(code)


def job_folder(folder: str) -> Path | str:
    """A folder as a path; ``s3://bucket/prefix`` as it is (a Path would fold its ``//``)."""
    from signdigits.files.paths import is_object_url

    return folder if is_object_url(folder) else Path(folder)


def _name_or_fail(name: str | None) -> str | None:
    from signdigits.db.jobs import JobNameError, job_name

    try:
        return None if name is None else job_name(name)
    except JobNameError as exc:
        fail(f"--name: {exc}", code=USAGE)


def status(
    job: str | None = typer.Argument(None, help=JOB_HELP + "; omit for all jobs"),
    follow: bool = typer.Option(False, "--follow", "-f",
                                help="JOB's progress bar until it ends, then its summary"),
) -> None:
    """State, images done / total, below threshold, errors, rate, model version."""
    from signdigits.cli.status import print_status

    if follow and job is None:
        fail("--follow watches one job: give its id, a unique prefix or 'latest'", code=USAGE)
    settings = settings_or_fail()
    sessions = database_for_reading(settings)
    jobs = [job_or_fail(sessions, job)] if job is not None else None
    if not follow or jobs is None:
        print_status(jobs, settings=settings, sessions=sessions)
        return
    from signdigits.cli import watch

    try:
        summary = watch.watch(jobs[0].id, settings=settings, sessions=sessions)
    except KeyboardInterrupt:
        exit_interrupted(f"stopped watching; job {jobs[0].id} goes on "
                         "(`signdigits cancel` stops it)")
    watch.print_summary(summary, settings=settings, sessions=sessions)


def results(
    job: str = typer.Argument(..., help=JOB_HELP),
    digit: int | None = typer.Option(None, min=0, max=9,
                                     help="only images predicted as this digit"),
    below_threshold: bool = typer.Option(False, "--below-threshold", help="only uncertain ones"),
    errors: bool = typer.Option(
        False, "--errors", help="only images with an error (unreadable, or skipped by cancel)"
    ),
    format: str = typer.Option("table", "--format", help="table, csv or json"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write here instead of stdout"),
    labels: str | None = typer.Option(
        None, "--labels", help="'folders' (folders named 0-9 are labels) or a path,digit CSV: "
        "print accuracy, coverage by threshold and the confusion matrix instead of rows"),
) -> None:
    """One row per image: path, digit, confidence, below_threshold, error."""
    from signdigits.cli.output import OutputError, check_writable, write_results

    if format not in ("table", "csv", "json"):
        fail(f"--format must be table, csv or json, not {format!r}", code=USAGE)
    if labels is not None:
        if output is not None or format != "table" or digit is not None or below_threshold \
                or errors:
            fail("--labels prints the figures of the whole job: use it without --format, "
                 "--output, --digit, --below-threshold and --errors", code=USAGE)
        _check_labels(job, labels)
        return
    settings = settings_or_fail()
    try:
        if output is not None:
            check_writable(output)
        sessions = database_for_reading(settings)
        found = job_or_fail(sessions, job)
        from signdigits.worker.thresholds import thresholds_by_model

        with sessions() as session:
            write_results(session, job=found, digit=digit, below_threshold=below_threshold,
                          errors=errors, fmt=format, output=output,
                          thresholds=thresholds_by_model(settings, session, found))
    except OutputError as exc:
        fail(str(exc))


def _check_labels(job: str, source: str) -> None:
    from signdigits.cli.labels import read_labels, report
    from signdigits.cli.status import several_models
    from signdigits.db.labels import evaluate
    from signdigits.worker.thresholds import models_that_read

    try:
        labels = read_labels(source)
    except ValueError as exc:
        fail(str(exc), code=USAGE)
    settings = settings_or_fail()
    sessions = database_for_reading(settings)
    found = job_or_fail(sessions, job)
    with sessions() as session:
        figures = evaluate(session, job=found, labels=labels)
        reads = models_that_read(settings, session, [found])[found.id]
    # A model promoted while it ran flagged its images by its own default: each said.
    flagged = reads if found.threshold_from_model and several_models(found, reads) else None
    print(report(figures, source=source, models=flagged))


def resume(
    job: str = typer.Argument(..., help=JOB_HELP),
    lost: bool = typer.Option(False, "--lost", help="re-send every batch with pending "
                              "images, even if the broker still holds some of the job's"),
) -> None:
    """Finish an interrupted submission; send again batches the broker lost, once.

    With no SIGNDIGITS_BROKER_URL (a job of `run` or `serve`'s embedded stack), it starts
    that stack, as `run` does, and shows the job's progress until it ends.
    """
    from signdigits.broker.app import create_app
    from signdigits.cli import watch
    from signdigits.config.settings import Settings
    from signdigits.producer.submit import SubmissionError, resume_job

    settings = settings_or_fail()
    sessions = database_for_reading(settings)
    found = job_or_fail(sessions, job)
    if found.cancelled_at is not None:
        fail(f"job {found.id} was cancelled")
    state = watch.summarize(found.id, settings=settings, sessions=sessions).state
    if state in ("done", "done with errors"):  # every row read: no stack to start
        console.print(f"job {found.id} is {state}: nothing to resume")
        return

    def send_again(settings: Settings) -> str:
        try:
            done = resume_job(create_app(settings), sessions=sessions, job=found,
                              settings=settings, lost=lost)
        except SubmissionError as exc:
            fail(str(exc))
        kind = "lost or never sent" if done.lost else "never sent"
        console.print(f"job {found.id}: enqueued {counted(done.resent, 'batch')} with pending "
                      f"images ({kind})")
        if done.on_broker:
            console.print(f"job {found.id}: {counted(done.on_broker, 'batch')} sent before "
                          f"{'is' if done.on_broker == 1 else 'are'} still on the broker "
                          "(queued, or held by a worker): read when a worker takes "
                          f"{'it' if done.on_broker == 1 else 'them'}; `resume --lost` sends "
                          f"{'it' if done.on_broker == 1 else 'them'} again if lost")
        if found.submitted_at is None:
            console.print(f"job {found.id}: walk finished: {done.found:,} more "
                          f"{'image' if done.found == 1 else 'images'} in "
                          f"{counted(done.batches, 'batch')}")
        return found.id

    if not settings.broker_url:
        # The job's broker was the embedded one of a `run` or `serve` that has stopped:
        # start one again, with workers, as `run` does. Its database is ours to migrate.
        sessions = database_for_writing(settings)
        code = watch.on_local_stack(send_again, settings=settings, sessions=sessions,
                                    workers=settings.concurrency)
        if code == INTERRUPTED:
            exit_interrupted()
        raise typer.Exit(code)
    check_broker(settings)
    send_again(settings)


def cancel(job: str = typer.Argument(..., help=JOB_HELP)) -> None:
    """Skip the job's batches not yet started; the job ends cancelled.

    A job still being walked is answered once its walk has stopped (up to 10 s). A job
    already cancelled is said to be, with when (exit 0, as the API's 200); one that ended
    otherwise is refused.
    """
    from signdigits.broker.app import configured_app
    from signdigits.db.jobs import JobFinished
    from signdigits.db.models import Job, as_utc
    from signdigits.db.progress import summarize_job
    from signdigits.producer.cancel import CANCEL_WAIT_SECONDS, cancel_and_wait
    from signdigits.producer.webhooks import send_if_ended

    settings = settings_or_fail()
    sessions = database_for_reading(settings)
    found = job_or_fail(sessions, job)
    # Cancelled again: still swept and waited for, as the API does, but not told as news.
    before = found.cancelled_at
    try:
        stopped = cancel_and_wait(sessions, job_id=found.id,
                                  stall_seconds=settings.stall_seconds)
    except JobFinished as exc:
        fail(str(exc))
    app = configured_app(settings)
    if app is not None:  # else a running stack's reconciler claims its webhook
        send_if_ended(app, sessions, found.id)
    with sessions() as session:  # read afresh: ``found`` is from before the cancel
        summary = summarize_job(session, job=session.get_one(Job, found.id),
                                stall_seconds=settings.stall_seconds)
    said = (f"job {found.id}: cancelled" if before is None else
            f"job {found.id}: already cancelled at {as_utc(before):%Y-%m-%d %H:%M:%S} UTC")
    if not stopped:
        console.print(f"{said}; its walk has not stopped after "
                      f"{CANCEL_WAIT_SECONDS:g} s (it stops at its next part)")
        return
    if before is not None:
        console.print(said)
        return
    console.print(f"job {found.id}: cancelled, {summary.cancelled:,} pending images "
                  f"skipped, of {summary.total:,}")


def delete(
    job: str = typer.Argument(..., help=JOB_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
) -> None:
    """Delete an ended job: its rows, reviews and hands, and an upload's stored files.

    A job that has not ended is refused (cancel it first). Asks first, unless --yes.
    """
    from signdigits.db.jobs import JobRunning
    from signdigits.files.names import printable
    from signdigits.web.deleting import delete_job_everywhere

    settings = settings_or_fail()
    sessions = database_for_reading(settings)
    found = job_or_fail(sessions, job)
    shown = f"job {found.id} ({printable(found.name)})"
    if not yes:
        try:
            sure = typer.confirm(f"delete {shown}, its results and reviews?", err=True)
        except typer.Abort:  # no answer (end of input): nothing was agreed to
            sure = False
        if not sure:
            fail("nothing deleted")
    try:
        removed = delete_job_everywhere(sessions, settings, job_id=found.id)
    except JobRunning as exc:
        fail(str(exc))
    console.print(f"deleted {shown}" + (" and its uploaded files" if removed else ""),
                  markup=False)
