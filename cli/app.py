"""``signdigits``: one command for the whole pipeline. Heavy imports happen per command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from signdigits.bench.submit import SubmitBy
from signdigits.cli import reviews as cli_reviews
from signdigits.cli import training as cli_training
from signdigits.cli import web as cli_web
from signdigits.cli.console import (
    INTERRUPTED,
    USAGE,
    console,
    exit_interrupted,
    exit_promptly,
    fail,
)
from signdigits.cli.preflight import (
    OneLineErrors,
    database_for_reading,
    database_for_writing,
    require_broker,
    settings_or_fail,
)
from signdigits.config.network import is_loopback

app = OneLineErrors(
    add_completion=False,
    no_args_is_help=True,
    help="Classify folders of sign-language digit photos with Celery workers.",
)
for command in cli_training.app.registered_commands:
    app.registered_commands.append(command)
app.registered_commands += cli_web.app.registered_commands
app.registered_commands += cli_reviews.app.registered_commands
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")

JOB_HELP = "job id, unique prefix of one, or 'latest'"


def _job(sessions, ref: str):
    from signdigits.db.jobs import JobNotFound, resolve_job

    with sessions() as session:
        try:
            return resolve_job(session, ref=ref)
        except JobNotFound as exc:
            fail(str(exc))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations (alembic upgrade head)."""
    settings = settings_or_fail()
    database_for_writing(settings)
    from signdigits.db.session import shown_url

    console.print(f"database {shown_url(settings.database_url)} is at the latest schema")


@app.command()
def submit(
    folder: Path = typer.Argument(..., help="folder of images (searched recursively)"),
    threshold: float = typer.Option(None, min=0, max=1, help="default: the model's"),
    batch_size: int = typer.Option(None, min=1, max=4096, help="images per task"),
    inline: bool = typer.Option(None, "--inline/--paths", help="ship image bytes in messages"),
    wait: bool = typer.Option(False, "--wait", help="show progress until the job finishes"),
) -> None:
    """Record a folder as a job and enqueue its batches; prints the job id."""
    from signdigits.cli import pipeline

    settings = settings_or_fail()
    require_broker(settings, " (or `signdigits run` for a one-machine job)")
    pipeline.check_broker(settings)  # before anything is recorded
    sessions = database_for_writing(settings)
    job = pipeline.submit(folder, settings=settings, sessions=sessions, threshold=threshold,
                          batch_size=batch_size, inline=inline)
    print(job.job_id)
    if wait:
        summary = pipeline.watch(job.job_id, settings=settings, sessions=sessions)
        pipeline.print_summary(summary, sessions=sessions)
    exit_promptly()


@app.command()
def run(
    folder: Path = typer.Argument(..., help="folder of images (searched recursively)"),
    workers: int = typer.Option(None, min=1, max=64, help="worker processes"),
    threshold: float = typer.Option(None, min=0, max=1, help="default: the model's"),
    batch_size: int = typer.Option(None, min=1, max=4096, help="images per task"),
) -> None:
    """The whole pipeline on this machine: broker, workers, submit, progress, summary."""
    from signdigits.cli import pipeline

    settings = settings_or_fail()
    sessions = database_for_writing(settings)
    code = pipeline.run_locally(
        folder, settings=settings, sessions=sessions, workers=workers or settings.concurrency,
        threshold=threshold, batch_size=batch_size,
    )
    if code == INTERRUPTED:
        exit_interrupted()  # its workers are stopped and it said so
    raise typer.Exit(code)


@app.command()
def worker(
    concurrency: int = typer.Option(None, min=1, max=256, help="processes (default: setting)"),
    hostname: str = typer.Option(None, "--hostname", "-n", help="node name, e.g. w1@%h"),
    loglevel: str = typer.Option("INFO", help="Celery log level"),
) -> None:
    """A Celery worker with task events on (same as `celery -A signdigits.worker worker -E`)."""
    from signdigits.serving.artifact import ArtifactError, read_model_info, resolve_model_path
    from signdigits.stack.local import worker_command

    settings = settings_or_fail()
    require_broker(settings)
    try:  # before anything starts: a worker without its model must take no batch
        read_model_info(resolve_model_path(settings.model_path)).served_file(settings.runtime)
    except ArtifactError as exc:
        fail(str(exc))
    database_for_writing(settings)
    name = hostname or "signdigits@%h"
    command = worker_command(concurrency=concurrency or settings.concurrency, name=name,
                             loglevel=loglevel)
    os.execv(sys.executable, command)


@app.command()
def ready(
    node: str = typer.Argument(..., help="worker node name, e.g. signdigits@host"),
    timeout: float = typer.Option(10.0, min=0.1, help="seconds to wait for its reply"),
) -> None:
    """Exit 0 only if the worker answers and all its processes have the model loaded."""
    settings = settings_or_fail()
    require_broker(settings)
    from signdigits.broker.app import create_app
    from signdigits.cli.console import output
    from signdigits.cli.pipeline import check_broker
    from signdigits.worker.readiness import ask_models_loaded

    check_broker(settings, timeout=timeout)  # one that never answers outlasted --timeout

    status = ask_models_loaded(create_app(settings), name=node, timeout=timeout)
    if status is None:
        fail(f"{node}: no reply in {timeout:g} s (not running, or another broker)", code=1)
    loaded, processes = status
    if not processes or loaded < processes:
        fail(f"{node}: {loaded} of {processes} processes have the model loaded (not ready)",
             code=1)
    output.print(f"{node}: ready, {loaded} of {processes} processes have the model loaded")


@app.command()
def flower(
    port: int = typer.Option(5555, min=1, max=65535, help="port to listen on"),
    address: str = typer.Option("127.0.0.1", help="address to listen on"),
) -> None:
    """Celery's monitoring UI for this broker (basic auth from SIGNDIGITS_FLOWER_BASIC_AUTH)."""
    settings = settings_or_fail()
    require_broker(settings)
    if not settings.flower_basic_auth and (settings.environment != "development"
                                          or not is_loopback(address)):
        # Flower shows every task's arguments and can shut workers down: never open.
        fail(f"flower on {address} needs SIGNDIGITS_FLOWER_BASIC_AUTH=user:password "
             f"(SIGNDIGITS_ENVIRONMENT={settings.environment})", code=USAGE)
    command = [sys.executable, "-m", "celery", "-A", "signdigits.worker", "flower",
               f"--port={port}", f"--address={address}"]
    if settings.flower_basic_auth:
        # Flower reads FLOWER_* variables; on its command line `ps` would show the password.
        os.environ["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
    os.execv(sys.executable, command)


@app.command()
def status(
    job: str = typer.Argument(None, help=JOB_HELP + "; omit for all jobs"),
) -> None:
    """State, images done / total, below threshold, errors, rate, model version."""
    from signdigits.cli import pipeline

    settings = settings_or_fail()
    sessions = database_for_reading(settings)
    jobs = [_job(sessions, job)] if job is not None else None
    pipeline.print_status(jobs, settings=settings, sessions=sessions)


@app.command()
def results(
    job: str = typer.Argument(..., help=JOB_HELP),
    digit: int = typer.Option(None, min=0, max=9, help="only images predicted as this digit"),
    below_threshold: bool = typer.Option(False, "--below-threshold", help="only uncertain ones"),
    errors: bool = typer.Option(
        False, "--errors", help="only images with an error (unreadable, or skipped by cancel)"
    ),
    format: str = typer.Option("table", "--format", help="table, csv or json"),
    output: Path = typer.Option(None, "--output", "-o", help="write here instead of stdout"),
) -> None:
    """One row per image: path, digit, confidence, below_threshold, error."""
    from signdigits.cli.output import OutputError, check_writable, write_results

    if format not in ("table", "csv", "json"):
        fail(f"--format must be table, csv or json, not {format!r}", code=USAGE)
    settings = settings_or_fail()
    try:
        if output is not None:
            check_writable(output)
        sessions = database_for_reading(settings)
        found = _job(sessions, job)
        with sessions() as session:
            write_results(session, job=found, digit=digit, below_threshold=below_threshold,
                          errors=errors, fmt=format, output=output)
    except OutputError as exc:
        fail(str(exc))


@app.command()
def resume(
    job: str = typer.Argument(..., help=JOB_HELP),
    lost: bool = typer.Option(False, "--lost", help="re-send every batch with pending "
                              "images, even if the broker still holds some of the job's"),
) -> None:
    """Finish an interrupted submission; send again batches the broker lost, once."""
    from signdigits.broker.app import create_app
    from signdigits.cli.pipeline import check_broker
    from signdigits.producer.submit import SubmissionError, resume_job

    settings = settings_or_fail()
    require_broker(settings)
    sessions = database_for_reading(settings)
    found = _job(sessions, job)
    check_broker(settings)
    if found.cancelled_at is not None:
        fail(f"job {found.id} was cancelled")
    try:
        done = resume_job(create_app(settings), sessions=sessions, job=found,
                          settings=settings, lost=lost)
    except SubmissionError as exc:
        fail(str(exc))
    kind = "lost or never sent" if done.lost else "never sent"
    console.print(f"job {found.id}: enqueued {done.resent} batches with pending images "
                  f"({kind})")
    if found.submitted_at is None:
        console.print(f"job {found.id}: walk finished: {done.found:,} more images in "
                      f"{done.batches:,} batches")


@app.command()
def cancel(job: str = typer.Argument(..., help=JOB_HELP)) -> None:
    """Skip the job's batches not yet started; the job ends cancelled."""
    from signdigits.db.jobs import JobFinished, cancel_job

    settings = settings_or_fail()
    sessions = database_for_reading(settings)
    found = _job(sessions, job)
    try:
        with sessions.begin() as session:
            skipped = cancel_job(session, job_id=found.id)
    except JobFinished as exc:
        fail(str(exc))
    console.print(f"job {found.id}: cancelled, {skipped} pending images skipped")


@app.command()
def bench(
    images: int = typer.Option(10_000, min=1, help="image files to build and classify"),
    workers: int = typer.Option(None, min=1, help="worker processes (default: setting)"),
    database: str = typer.Option(None, "--database", help="SQLAlchemy URL (default: temp SQLite)"),
    source: Path = typer.Option(None, help="images to copy (default: ../shared dataset)"),
    batch_size: int = typer.Option(None, min=1, max=4096, help="images per task"),
    inline: bool = typer.Option(False, "--inline", help="submit with --inline (bytes in messages)"),
    submit: SubmitBy = typer.Option(SubmitBy.COMMAND, "--submit",
                               help="start the job by a fresh `submit` process, or by POST "
                                    "/api/jobs to a `serve` started beforehand"),
) -> None:
    """Pipeline vs in-process ceiling vs one model.predict per image; ends `ratio_to_ceiling=`."""
    from signdigits.bench.end_to_end import run_bench
    from signdigits.cli.preflight import bench_inputs
    from signdigits.serving.artifact import ArtifactError
    from signdigits.stack.local import stop_on_termination

    settings = settings_or_fail()
    source, database = bench_inputs(source, database)
    stop_on_termination()
    try:
        result = run_bench(images=images, workers=workers or settings.concurrency,
                           database_url=database, source=source,
                           batch_size=batch_size or settings.batch_size, inline=inline,
                           runtime=settings.runtime, model_path=settings.model_path,
                           submit_by=submit)
    except ArtifactError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        exit_interrupted("interrupted: the bench's workers, broker and files are removed")
    def figure(value: float | None, digits: int = 1) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    e2e = result.end_to_end
    print(f"images={result.images} cpu_threads={os.cpu_count()}")
    print(f"runtime={result.runtime}")
    print(f"submitted_by={submit.value}")
    print(f"ceiling_images_per_s={result.ceiling:.1f}")
    print(f"ceiling_tensorflow_images_per_s={figure(result.ceiling_tensorflow)}")
    print(f"original_images_per_s={figure(result.original)}")
    print(f"end_to_end_images_per_s={e2e.images_per_s:.1f}")
    print(f"multiply_adds_per_image={result.multiply_adds or 'n/a'}")
    print(f"ceiling_gflops={figure(result.gflops(result.ceiling), 2)}")
    print(f"end_to_end_gflops={figure(result.gflops(e2e.images_per_s), 2)}")
    print(f"producer_seconds={e2e.producer_seconds:.2f}")
    print(f"producer_peak_mb={e2e.producer_peak_mb:.0f}")
    print("worker_peak_mb=" + ",".join(f"{m:.0f}" for m in e2e.worker_peak_mb))
    print("cpu_seconds=" + ",".join(f"{k}:{v:.2f}" for k, v in e2e.cpu.as_dict().items()))
    print("task_seconds=" + ",".join(f"{k}:{v:.2f}" for k, v in e2e.task_seconds.items()))
    print(f"tasks={e2e.tasks}")
    print(f"ratio_to_original={figure(result.ratio_to_original)}")
    print(f"ratio_to_tensorflow_ceiling={figure(result.ratio_to_tensorflow_ceiling, 2)}")
    print(f"ratio_to_ceiling={result.ratio_to_ceiling:.2f}")
