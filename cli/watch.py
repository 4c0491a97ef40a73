"""A job as a person watches it from the terminal: submitted with a spinner, a progress
bar until it ends, the summary; and ``run``, which does all of it on a local stack."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from signdigits.cli.console import INTERRUPTED, USAGE, console, counted, fail, output
from signdigits.config.messages import masked_password
from signdigits.config.settings import Settings
from signdigits.config.webhooks import WebhookRefused
from signdigits.db.jobs import resolve_job
from signdigits.db.progress import JobSummary, summarize_job
from signdigits.db.results import digit_counts, without_a_digit
from signdigits.db.session import shown_url
from signdigits.files.names import printable
from signdigits.producer.scan import FolderError
from signdigits.serving.artifact import ArtifactError


def submit(folder: Path | str, *, settings: Settings, sessions: sessionmaker[Session], **options):
    from signdigits.broker.app import create_app
    from signdigits.producer.submit import submit_folder

    with console.status(f"scanning {folder}") as spinner:
        waiting = False

        def progress(stage: str, n: int) -> None:
            nonlocal waiting
            spinner.update(f"{folder}: {n:,} images {stage}")
            if "waiting" in stage and not waiting:  # a line a log (not only a terminal) keeps
                console.print(f"{folder}: {n:,} images {stage}", markup=False)
            waiting = "waiting" in stage

        try:
            job = submit_folder(folder, settings=settings, sessions=sessions,
                                app=create_app(settings), progress=progress, **options)
        except WebhookRefused as exc:
            fail(str(exc), code=USAGE)  # a URL this server will never call
        except (FolderError, ArtifactError, ValueError) as exc:
            fail(str(exc))
    console.print(f"job {job.job_id}: {counted(job.total_images, 'image')} in "
                  f"{counted(job.total_batches, 'batch')}")
    return job


def summarize(job_id: str, *, settings: Settings, sessions: sessionmaker[Session]) -> JobSummary:
    with sessions() as session:
        job = resolve_job(session, ref=job_id)
        return summarize_job(session, job=job, stall_seconds=settings.stall_seconds)


def watch(job_id: str, *, settings: Settings, sessions: sessionmaker[Session],
          alive=lambda: True) -> JobSummary:
    """Progress bar until the job finishes (or ``alive()`` turns false)."""
    summary = summarize(job_id, settings=settings, sessions=sessions)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("classifying", total=summary.total, detail="")
        while not summary.state.finished and alive():
            time.sleep(0.5)
            summary = summarize(job_id, settings=settings, sessions=sessions)
            rate = f"{summary.rate:,.0f} img/s" if summary.rate else ""
            stalled = " STALLED" if summary.stalled else ""
            cancelled = f"{summary.cancelled:,} cancelled " if summary.cancelled else ""
            # Rows a cancel marked are not read: the bar stops where reading stopped.
            bar.update(task, total=summary.total,
                       completed=summary.finished - summary.cancelled,
                       detail=f"{counted(summary.errors, 'error')} {cancelled}{rate}{stalled}")
    return summary


def run_locally(folder: Path | str, *, settings: Settings, sessions: sessionmaker[Session],
                workers: int, threshold: float | None, batch_size: int | None,
                webhook: str | None = None, name: str | None = None) -> int:
    """Broker (embedded unless configured), workers, submit, watch, summary, shutdown."""
    def begin(settings: Settings) -> str:
        return submit(folder, settings=settings, sessions=sessions, threshold=threshold,
                      batch_size=batch_size, webhook=webhook, name=name).job_id

    return on_local_stack(begin, settings=settings, sessions=sessions, workers=workers)


def on_local_stack(begin: Callable[[Settings], str], *, settings: Settings,
                   sessions: sessionmaker[Session], workers: int) -> int:
    """Start the one-machine stack (the broker embedded unless configured), ``begin`` a
    job on it (submit it, or send again what a ``resume`` must), watch it to its end,
    print the summary, stop everything. ``begin`` gets the settings naming the stack's
    broker and returns the job's id. The exit code: 0 done, 1 failed or the stack died,
    INTERRUPTED on Ctrl-C."""
    from signdigits.serving.hands.models import HandModelsError
    from signdigits.serving.served import check_served_models
    from signdigits.stack.local import LocalStack
    from signdigits.stack.processes import StackError, stop_on_termination

    try:  # before the broker and workers start: their workers would exit at once
        check_served_models(settings)
        check_promoted(settings, sessions)
    except (ArtifactError, HandModelsError) as exc:
        fail(str(exc))
    console.print(f"results database: {shown_url(settings.database_url)}")
    stack = LocalStack(broker_url=settings.broker_url, database_url=settings.database_url,
                       concurrency=workers, name=f"local-{os.getpid()}@%h")
    stop_on_termination()
    abandon = False  # True once nothing the worker holds is wanted (see LocalStack.stop)
    try:
        settings = settings.model_copy(update={"broker_url": stack.start()})
        console.print(f"broker: {masked_password(settings.broker_url or '')}"
                      + (" (embedded, a new password each run)" if stack.broker else ""),
                      markup=False)
        job_id = begin(settings)
        # The broker too: with it gone the worker lives on in Celery's reconnect loop,
        # and `run` had watched a stalled job for good.
        summary = watch(job_id, settings=settings, sessions=sessions,
                        alive=lambda: stack.failure() is None)
        if not summary.state.finished:
            # failure() quotes the worker's last lines when it is the worker that exited.
            log = stack.worker.log_tail() if stack.worker is not None else ""
            problem = stack.failure() or f"the worker stopped unexpectedly; its log:\n{log}"
            console.print(f"error: {problem}", markup=False)
            # Works as printed without a broker too: resume then starts this same stack.
            console.print(f"the job is recorded: `signdigits resume {job_id}` continues it "
                          "(and so does the next `signdigits run` or `serve` on this "
                          "database, by itself)")
            return 1
        print_summary(summary, settings=settings, sessions=sessions)
        abandon = True  # every row is stored
        # The workers post the webhook: they stop once it is settled, or on Ctrl-C (the
        # next `run` or `serve` on this database then sends it).
        wait_for_webhook(job_id, sessions=sessions, alive=lambda: stack.failure() is None)
        return 1 if summary.state == "failed" else 0
    except StackError as exc:
        fail(str(exc), code=1)
    except KeyboardInterrupt:
        console.print("interrupted: stopping workers (the webhook stays to send)" if abandon
                      else "interrupted: stopping workers (pending images stay recorded)")
        abandon = True
        return INTERRUPTED
    finally:
        with console.status("stopping workers"):
            stack.stop(abandon=abandon)


def print_summary(summary: JobSummary, *, settings: Settings,
                  sessions: sessionmaker[Session]) -> None:
    """The job's figures and what to do next, on stdout (``run ... > summary.txt``): the
    progress and the stack's own lines stay on stderr."""
    from signdigits.cli.status import models_line, several_models
    from signdigits.worker.thresholds import models_that_read

    with sessions() as session:
        counts = digit_counts(session, job_id=summary.job.id)
        no_hand, several = without_a_digit(session, job_id=summary.job.id)
        images_per_s = summary.rate
        reads = models_that_read(settings, session, [summary.job])[summary.job.id]
    job = summary.job
    say = partial(output.print, markup=False, soft_wrap=True)
    say(f"job {job.id} ({printable(job.name)}): {summary.state}")
    table = Table(show_header=True)
    for digit in range(10):
        table.add_column(str(digit), justify="right")
    table.add_column("no hand", justify="right")
    extra = [str(no_hand)]
    if several:  # photos of several hands read: their digits are in `results`
        table.add_column("several hands", justify="right")
        extra.append(str(several))
    table.add_row(*(str(counts.get(d, 0)) for d in range(10)), *extra)
    output.print(table)
    rate = f"{images_per_s:,.1f} images/s" if images_per_s else "n/a"
    # Read by several models (one promoted meanwhile): each flagged by its threshold.
    below = ("below the threshold of the model that read them" if several_models(job, reads)
             and job.threshold_from_model else f"below threshold {job.threshold:g}")
    say(f"{summary.done:,} classified, {summary.below_threshold:,} {below}, "
        f"{counted(summary.errors, 'error')}, {summary.cancelled:,} "
        f"cancelled, of {summary.total:,} images; {rate}")
    if (line := models_line(job, reads)) is not None:
        say(line)
    for line in next_steps(summary):
        say(line)


def next_steps(summary: JobSummary) -> list[str]:
    """How to look at what needs a person: the images below the threshold, the errors."""
    job_id, steps = summary.job.id, []
    if summary.below_threshold:
        steps += [f"review the {summary.below_threshold:,} images below the threshold: "
                  f"signdigits review {job_id}",
                  f"  or in the browser: signdigits serve, then "
                  f"http://127.0.0.1:8000/jobs/{job_id}/review"]
    if summary.errors:
        steps.append(f"see the errors: signdigits results {job_id} --errors")
    steps.append(f"all the results: signdigits results {job_id} --format csv "
                 "--output results.csv")
    return steps


def check_promoted(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """The promoted model's files load here, or ArtifactError. This machine's workers
    would otherwise serve the default model beside it, saying so only in their log."""
    from signdigits.db.registry import model_file, promoted_model
    from signdigits.serving.served import check_model_file

    with sessions() as session:
        promoted = promoted_model(session)
    if promoted is None:
        return
    try:
        check_model_file(model_file(settings.registry_dir, promoted.file), settings)
    except ArtifactError as exc:
        raise ArtifactError(f"the promoted model {promoted.version} cannot be served here "
                            f"({exc}): restore its files, or `signdigits models rollback`"
                            ) from None


def wait_for_webhook(job_id: str, *, sessions: sessionmaker[Session], alive=lambda: True) -> None:
    """Until the job's webhook is delivered or given up (at once for a job without one),
    then one line saying which."""
    from signdigits.db.models import Job
    from signdigits.db.webhooks import describe_webhook

    def read() -> Job:
        with sessions() as session:
            job = session.get_one(Job, job_id)
            session.expunge(job)
            return job

    job = read()
    if job.webhook_state is None:
        return
    if job.webhook_state in ("pending", "sending"):
        # A line, not only the spinner: a log or a pipe gets no spinner, and a receiver that
        # is down keeps this waiting through every retry.
        console.print(f"{describe_webhook(job)}; waiting for it (Ctrl-C stops waiting: the "
                      "results are stored, and the next `run` or `serve` on this database "
                      "sends it)", markup=False)
    with console.status("sending the webhook") as spinner:
        while job.webhook_state in ("pending", "sending") and alive():
            spinner.update(describe_webhook(job))
            time.sleep(0.5)
            job = read()
    console.print(describe_webhook(job), markup=False)
