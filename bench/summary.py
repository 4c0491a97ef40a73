"""What a job's summary costs at ROWS image rows: the batches' counts against every row.

summarize_job (the batches' counts, what ``status``, ``run``'s progress bar and the job
pages read) against one query reading every image row (what it did before migration
0006). Median of 9 of each, warm cache. Nine in ten rows are classified, one in twenty
below the threshold.

    .venv/bin/python -m signdigits.bench.summary [ROWS] [DATABASE_URL]
        (default 1000000, a temporary SQLite file)

A PostgreSQL URL must name a database of its own: the job is deleted afterwards. Prints::

    20,000 image rows in sqlite:////tmp/signdigits-bench-summary-lack7y77/summary.db ...
    summary from the batches' counts: 0.8 ms; reading every image row: 19.4 ms (25x)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from signdigits.bench.arguments import database_url, positive_int

BATCH = 128
PART = 49_920  # rows inserted per statement: whole batches of 128


def fill(sessions, rows: int):
    """A submitted job of ``rows`` image rows; the Job."""
    from sqlalchemy import update

    from signdigits.db.batches import refresh_batch_counts
    from signdigits.db.jobs import create_job
    from signdigits.db.manifest import add_manifest
    from signdigits.db.models import Image, ImageStatus, Job, utcnow

    job = Job(id=uuid.uuid4().hex, root="/photos", threshold=0.5, batch_size=BATCH,
              total_images=rows, total_batches=-(-rows // BATCH), model_version="bench",
              submitted_at=utcnow())
    with sessions.begin() as session:
        create_job(session, job=job)
        for start in range(0, rows, PART):
            add_manifest(session, job_id=job.id, rows=[
                (n // BATCH, f"{n}.jpg") for n in range(start, min(rows, start + PART))])
    with sessions.begin() as session:  # nine in ten classified, one in twenty below threshold
        session.execute(update(Image).where(Image.job_id == job.id, Image.id % 10 != 0).values(
            status=ImageStatus.DONE, digit=Image.id % 10, confidence=0.9,
            below_threshold=Image.id % 20 == 1, finished_at=utcnow()))
        refresh_batch_counts(session, job_id=job.id)
    return job


def every_row(session, job_id: str):
    """The counts from every image row of the job: before migration 0006."""
    from sqlalchemy import case, func, select

    from signdigits.db.models import Image, ImageStatus

    status = Image.status
    return session.execute(select(
        func.count(), *(func.sum(case((status == s, 1), else_=0)) for s in ImageStatus),
        func.sum(case((Image.below_threshold.is_(True), 1), else_=0)),
        func.max(Image.finished_at)).where(Image.job_id == job_id)).one()


def median_ms(sessions, read) -> float:
    times = []
    with sessions() as session:
        for _ in range(10):  # the first warms the cache and is not counted
            started = time.perf_counter()
            read(session)
            times.append(time.perf_counter() - started)
    return statistics.median(times[1:]) * 1000


def compare(sessions, job_id: str) -> str:
    """The line comparing the two reads, after checking they agree."""
    from signdigits.db.models import Job
    from signdigits.db.progress import summarize_job

    def from_batches(session):
        return summarize_job(session, job=session.get(Job, job_id), stall_seconds=60)

    with sessions() as session:
        summary = from_batches(session)
        counted = every_row(session, job_id)
    if (summary.total, summary.pending, summary.done) != tuple(counted[:3]):
        raise RuntimeError(f"the two reads disagree: {summary} against {tuple(counted)}")
    batches = median_ms(sessions, from_batches)
    scan = median_ms(sessions, lambda session: every_row(session, job_id))
    return (f"summary from the batches' counts: {batches:.1f} ms; reading every image row: "
            f"{scan:.1f} ms ({scan / batches:.0f}x)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m signdigits.bench.summary",
        description="Milliseconds of a job's summary at ROWS image rows: from the batches' "
                    "counts, and by reading every image row.")
    parser.add_argument("rows", nargs="?", type=positive_int, default=1_000_000, metavar="ROWS",
                        help="the job's image rows (default: 1000000)")
    parser.add_argument("url", nargs="?", default="", metavar="DATABASE_URL",
                        type=lambda text: database_url(text) if text else "",
                        help="a database of its own (default, or \"\": a temporary SQLite file)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from sqlalchemy.exc import OperationalError

    from signdigits.db.deleted import delete_job_rows
    from signdigits.db.migrate import upgrade
    from signdigits.db.session import session_factory, shown_url

    scratch = None if args.url else Path(tempfile.mkdtemp(prefix="signdigits-bench-summary-"))
    url = args.url or f"sqlite:///{Path(scratch or '.') / 'summary.db'}"
    try:
        try:
            upgrade(url)
        except OperationalError as exc:
            sys.exit(f"error: {shown_url(url)}: {str(exc.orig).strip().splitlines()[0]}")
        sessions = session_factory(url)
        print(f"{args.rows:,} image rows in {url.split('@')[-1]} ...", flush=True)
        job = fill(sessions, args.rows)
        try:
            print(compare(sessions, job.id))
        finally:
            with sessions.begin() as session:
                delete_job_rows(session, job_id=job.id)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
