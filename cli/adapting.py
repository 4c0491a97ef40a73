"""``adapt`` and ``compare``: a candidate model from jobs' reviews, and how it differs.

Both read the jobs' photos again and need the training extra (TensorFlow writes the
``.keras`` half of the pair; ``compare`` runs both models with ONNX Runtime).
"""

from __future__ import annotations

from pathlib import Path

import typer

from signdigits.cli.console import console, fail, output

JOBS = typer.Argument(..., help="job ids, unique prefixes, or 'latest'")
DATA = typer.Option(None, "--data", help="the dataset to replay and score on; default: the "
                    "folder the parent model was trained on, as its metadata records it")


def _stage_bar():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console, transient=False)
    tasks: dict[str, TaskID] = {}

    def stage(name: str, done: int, total: int) -> None:
        if not tasks:
            bar.start()  # at the first stage: a refusal before any work prints one line
        if name not in tasks:
            tasks[name] = bar.add_task(name, total=total)
        bar.update(tasks[name], completed=done, total=total)

    def finish() -> None:
        if tasks:  # stopping a bar never started prints an empty line
            bar.stop()

    return finish, stage


def _jobs_and_roots(settings, sessions, jobs: list[str]) -> tuple[list[str], list[Path]]:
    from signdigits.cli.preflight import job_or_fail
    from signdigits.web.upload_store import upload_root

    ids = list(dict.fromkeys(job_or_fail(sessions, ref).id for ref in jobs))
    roots = settings.allowed_roots
    return ids, [*roots, upload_root(settings)] if roots else []


def _prepared(jobs: list[str], data: Path | None):
    """``--data`` checked, the settings, the database, and the jobs' ids and folders."""
    from signdigits.cli.preflight import database_for_writing, settings_or_fail

    if data is not None and not data.is_dir():
        fail(f"--data {data}: not a folder", 2)
    settings = settings_or_fail()
    sessions = database_for_writing(settings)
    ids, roots = _jobs_and_roots(settings, sessions, jobs)
    return settings, sessions, ids, roots


def adapt(jobs: list[str] = JOBS,
          out: str = typer.Option(..., "--out", help="the new model's name in the registry"),
          data: Path | None = DATA) -> None:
    """Fine-tune the model that read the jobs on their reviewed hands; register it."""
    from signdigits.cli.training import CONVERTER, require_training_extra
    from signdigits.db.registry import model_name
    from signdigits.training.adapt_jobs import adapt_jobs
    from signdigits.training.data import DataError
    from signdigits.training.job_photos import left_out_text
    from signdigits.training.registry import RegistryError

    try:
        out = model_name(out)  # before any work: a name refused at the end lost it all
    except RegistryError as exc:
        fail(f"--out: {exc}", 2)
    require_training_extra("adapt", CONVERTER)
    settings, sessions, ids, roots = _prepared(jobs, data)
    finish, stage = _stage_bar()
    try:
        result = adapt_jobs(settings, sessions, ids, name=out, data=data, allowed_roots=roots,
                            stage=stage, report=lambda line: console.print(line, markup=False))
    except (RegistryError, DataError) as exc:
        finish()
        fail(str(exc))
    finish()
    evaluation = result.figures["evaluation"]
    hands, photos = len(result.reviewed), result.reviewed.photos
    left = left_out_text(result.reviewed.left_out)
    console.print(
        f"registered {result.row.name} ({result.row.version}, parent {result.row.parent}) "
        f"from {hands} reviewed hand{'s' * (hands != 1)} in {photos} photo"
        f"{'s' * (photos != 1)} of {len(ids)} job(s)"
        + (f" (left out: {left})" if left else "") + " in "
        f"{result.seconds:.0f} s; dataset test signers {evaluation['test']['accuracy']:.2%} "
        f"(parent {evaluation['test_before']['accuracy']:.2%}). Next: signdigits compare "
        f"{' '.join(i[:8] for i in ids)} --model {result.row.name}", markup=False)


def compare(jobs: list[str] = JOBS,
            model: str = typer.Option(..., "--model", help="the candidate: a registered "
                                      "model's name, version or version prefix"),
            data: Path | None = DATA) -> None:
    """The candidate beside the serving model on the jobs' photos and the dataset's test
    signers: how many answers would change, and which."""
    from signdigits.cli.models import registry_failure
    from signdigits.training.compare import compare_jobs, summary_lines
    from signdigits.training.data import DataError
    from signdigits.training.registry import RegistryError

    settings, sessions, ids, roots = _prepared(jobs, data)
    finish, stage = _stage_bar()
    try:
        result = compare_jobs(settings, sessions, ids, model=model, data=data,
                              allowed_roots=roots, stage=stage)
    except (RegistryError, DataError) as exc:
        finish()
        fail(registry_failure(exc))
    finish()
    for line in summary_lines(result):
        output.print(line, markup=False, highlight=False)
