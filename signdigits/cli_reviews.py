"""``export-reviews``: the reviewed images of jobs, ready for ``signdigits train --data``."""

from __future__ import annotations

from pathlib import Path

import typer

from signdigits.console import console, fail

app = typer.Typer()


@app.command("export-reviews")
def export_reviews_command(
    jobs: list[str] = typer.Argument(..., help="job ids, unique prefixes, or 'latest'"),
    out: Path = typer.Option(..., "--out", help="a new (or empty) folder to write"),
) -> None:
    """Reviewed images (not unusable ones) as digit folders 0-9, plus reviews.csv."""
    from db.queries import JobNotFound, resolve_job
    from signdigits.preflight import database_for_reading, settings_or_fail
    from signdigits.review_export import ExportError, check_out_folder, export_reviews
    from web.uploads import upload_root

    settings = settings_or_fail()
    try:
        check_out_folder(out)
    except ExportError as exc:
        fail(str(exc))
    sessions = database_for_reading(settings)
    with sessions() as session:
        try:
            ids = list(dict.fromkeys(resolve_job(session, ref=ref).id for ref in jobs))
        except JobNotFound as exc:
            fail(str(exc))
        roots = settings.allowed_roots
        try:
            summary = export_reviews(
                session, job_ids=ids, out=out, max_bytes=settings.max_file_bytes,
                allowed_roots=[*roots, upload_root(settings)] if roots else [],
                warn=lambda line: console.print(line, markup=False, highlight=False))
        except ExportError as exc:
            fail(str(exc))
    console.print(f"exported {summary.written} reviewed images of {len(ids)} job(s) to {out}/ "
                  f"({summary.linked} hard links, {summary.written - summary.linked} copies"
                  + (f", {summary.skipped} skipped" if summary.skipped else "") + "); "
                  f"manifest {out}/reviews.csv")
