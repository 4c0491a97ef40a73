"""``bench`` and ``bench-web``: the whole pipeline's and the web's speed, measured."""

from __future__ import annotations

from pathlib import Path

import typer

from signdigits.bench.submit import SubmitBy
from signdigits.cli.console import USAGE, exit_interrupted, fail
from signdigits.cli.preflight import settings_or_fail


def bench(
    images: int = typer.Option(1_000, min=1, help="image files to build and classify"),
    workers: int | None = typer.Option(None, min=1, help="worker processes (default: setting)"),
    database: str | None = typer.Option(None, "--database",
                                        help="SQLAlchemy URL (default: temp SQLite)"),
    source: Path | None = typer.Option(None, help="images to copy, e.g. a folder of foreign "
                                       "photos (default: ../shared dataset)"),
    batch_size: int | None = typer.Option(None, min=1, max=4096, help="images per task"),
    inline: bool = typer.Option(False, "--inline", help="submit with --inline (bytes in messages)"),
    submit: SubmitBy = typer.Option(SubmitBy.COMMAND, "--submit",
                               help="start the job by a fresh `submit` process, or by POST "
                                    "/api/jobs to a `serve` started beforehand"),
) -> None:
    """Pipeline vs the same reading path in forked processes; ends `ratio_to_ceiling=`."""
    from signdigits.bench.end_to_end import run_bench
    from signdigits.bench.report import bench_lines
    from signdigits.serving.artifact import ArtifactError
    from signdigits.serving.hands.models import HandModelsError
    from signdigits.stack.processes import stop_on_termination

    settings = settings_or_fail()
    source, database = bench_inputs(source, database)
    stop_on_termination()
    try:
        result = run_bench(images=images, workers=workers or settings.concurrency,
                           database_url=database, source=source,
                           batch_size=batch_size or settings.batch_size, inline=inline,
                           runtime=settings.runtime, model_path=settings.model_path,
                           hand_models=settings.hand_models_dir,
                           max_pixels=settings.max_image_pixels, submit_by=submit)
    except (ArtifactError, HandModelsError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        exit_interrupted("interrupted: the bench's workers, broker and files are removed")
    print("\n".join(bench_lines(result, submitted_by=submit.value, source=str(source))))


def bench_web(
    rows: int = typer.Option(100_000, min=50_000, help="images of the large job in the database"),
    busy_images: int = typer.Option(10_000, min=10, help="images of the job run meanwhile"),
    workers: int | None = typer.Option(None, min=1, help="worker processes (default: setting)"),
    database: str | None = typer.Option(None, "--database",
                                        help="SQLAlchemy URL (default: temp SQLite)"),
    source: Path | None = typer.Option(None, help="images to copy (default: ../shared dataset)"),
) -> None:
    """Web latency: image pages (first, 500th), a thumbnail, predict idle and during a job."""
    from signdigits.bench.report import web_bench_lines
    from signdigits.bench.web import run_web_bench
    from signdigits.stack.processes import stop_on_termination

    settings = settings_or_fail()
    source, database = bench_inputs(source, database)
    stop_on_termination()
    try:
        result = run_web_bench(rows=rows, busy_images=busy_images,
                               workers=workers or settings.concurrency,
                               database_url=database, source=source)
    except KeyboardInterrupt:
        exit_interrupted("interrupted: the bench's workers, broker and files are removed")
    print("\n".join(web_bench_lines(result)))


def bench_inputs(source: Path | None, database: str | None) -> tuple[Path, str | None]:
    """A bench's ``--source`` (a folder holding images) and ``--database`` (checked like
    SIGNDIGITS_DATABASE_URL), or one line and exit 2: both were tracebacks after the
    bench had started its workers."""
    from signdigits.bench.arguments import default_dataset
    from signdigits.config.settings import checked_database_url, shown_value
    from signdigits.producer.scan import scan_folder

    source = source or default_dataset()
    if not source.is_dir():
        fail(f"{source}: no such folder (pass --source DIR)", code=USAGE)
    if next(iter(scan_folder(source)), None) is None:
        fail(f"{source}: no images to copy (pass --source DIR)", code=USAGE)
    if database is not None:
        try:
            database = checked_database_url(database)
        except ValueError as exc:
            fail(f"--database {shown_value('database_url', database)}: {exc}", code=USAGE)
    return source, database
