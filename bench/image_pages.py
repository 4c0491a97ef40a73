"""Filtered image pages of a large job: how long the web takes for a page at any depth.

Writes one job of ``--rows`` finished rows straight into the database (digit ``id % 10``,
confidences spread over [0, 1), one row in ten below the threshold, one in fifty an
error), serves the web on it with uvicorn in this process (no broker or worker is
needed), and times ``GET /api/jobs/{id}/images`` with the grid's page size (60): for each
filter (none, ``digit=7``, ``below_threshold=true``, ``below_threshold=false``) and each
order (``confidence``, the grid's, and ``id``, the API's default), the first page and a
page 90% of the way through the filtered rows (reached by walking the cursors, 500 rows
a page, as a client would). Prints the median of ``--repeats`` requests per case.

    .venv/bin/python -m signdigits.bench.image_pages [DATABASE_URL] [--rows N] [--repeats N]
        (default: a new SQLite file in a temporary folder, 200000 rows, 15 requests)

For PostgreSQL, give a schema of its own, so the migration state is the bench's:
``postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dbench``
(after ``CREATE SCHEMA bench``). The job is deleted afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from signdigits.bench.arguments import database_url, positive_int

PAGE = 60  # the job page's grid asks for 60 at a time
FILTERS: dict[str, dict[str, object]] = {
    "none": {}, "digit=7": {"digit": 7}, "below_threshold=true": {"below_threshold": "true"},
    "below_threshold=false": {"below_threshold": "false"}}
ORDERS = ("confidence", "id")


def write_job(sessions, *, rows: int) -> str:
    """A finished job of ``rows`` synthetic rows; its id."""
    from sqlalchemy import case, update

    from signdigits.db.batches import refresh_batch_counts
    from signdigits.db.manifest import add_manifest
    from signdigits.db.models import Image, Job, utcnow

    job_id = uuid.uuid4().hex
    with sessions.begin() as session:
        session.add(Job(id=job_id, root="/nowhere", threshold=0.1, batch_size=128,
                        total_images=rows, total_batches=-(-rows // 128), model_version="m"))
        session.flush()
        for start in range(0, rows, 10_240):  # whole batches per part
            add_manifest(session, job_id=job_id, rows=[
                (n // 128, f"{n}.jpg") for n in range(start, min(rows, start + 10_240))])
    # A confidence spread by a multiplicative hash of the id, so no order of the filters'
    # rows follows the id's.
    confidence = ((Image.id * 7919) % 10_007) / 10_007.0
    with sessions.begin() as session:
        session.execute(
            update(Image).where(Image.job_id == job_id, Image.id % 50 != 0)
            .values(status="done", digit=Image.id % 10, confidence=confidence,
                    below_threshold=case((confidence < 0.1, True), else_=False),
                    finished_at=utcnow(), model_version="m", reading="hand landmarks")
            .execution_options(synchronize_session=False))
        session.execute(
            update(Image).where(Image.job_id == job_id, Image.id % 50 == 0)
            .values(status="error", error="cannot decode image", finished_at=utcnow())
            .execution_options(synchronize_session=False))
        refresh_batch_counts(session, job_id=job_id)
    return job_id


def _deep_cursor(client, url: str, params: dict, *, depth: float) -> str | None:
    """The cursor of the page ``depth`` of the way through the filtered rows."""
    total = 0
    cursors: list[str] = []
    cursor = None
    while True:
        page = client.get(url, params={**params, "limit": 500,
                                       **({"cursor": cursor} if cursor else {})}).json()
        total += len(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        cursors.append(cursor)
    wanted = int(total * depth) // 500 - 1
    return cursors[wanted] if 0 <= wanted < len(cursors) else None


def measure(client, job_id: str, *, repeats: int) -> list[tuple[str, str, float, float]]:
    """(filter, order, first page ms, deep page ms) per case."""
    url = f"/api/jobs/{job_id}/images"
    results = []
    for name, where in FILTERS.items():
        for order in ORDERS:
            params = {**where, "order": order}
            deep = _deep_cursor(client, url, params, depth=0.9)
            times = []
            for cursor in (None, deep):
                asked = {**params, "limit": PAGE, **({"cursor": cursor} if cursor else {})}
                client.get(url, params=asked).raise_for_status()  # warm
                samples = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    client.get(url, params=asked).raise_for_status()
                    samples.append((time.perf_counter() - started) * 1000)
                times.append(statistics.median(samples))
            results.append((name, order, times[0], times[1]))
            print(f"{name:<22} order={order:<10} first page {times[0]:7.1f} ms   "
                  f"at 90% {times[1]:7.1f} ms", flush=True)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m signdigits.bench.image_pages",
        description="Median time of a job's filtered image pages (first and 90% deep), "
                    "through the web, on a job of ROWS synthetic rows.")
    parser.add_argument("url", nargs="?", type=database_url, default=None,
                        metavar="DATABASE_URL",
                        help="the database (default: a new SQLite file, removed after)")
    parser.add_argument("--rows", type=positive_int, default=200_000,
                        help="the job's rows (default: 200000)")
    parser.add_argument("--repeats", type=positive_int, default=15,
                        help="requests per case; the median is printed (default: 15)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import httpx

    from signdigits.bench.web_thread import web_in_thread
    from signdigits.config.settings import Settings
    from signdigits.db.deleted import delete_job_rows
    from signdigits.db.migrate import upgrade
    from signdigits.db.session import session_factory, shown_url

    scratch = Path(tempfile.mkdtemp(prefix="signdigits-bench-pages-"))
    url = args.url or f"sqlite:///{scratch / 'pages.db'}"
    try:
        upgrade(url)
        sessions = session_factory(url)
        started = time.perf_counter()
        job_id = write_job(sessions, rows=args.rows)
        print(f"{shown_url(url)}: {args.rows:,} rows written in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        settings = Settings(database_url=url, upload_dir=scratch / "up")
        try:
            with web_in_thread(settings) as base, httpx.Client(base_url=base,
                                                               timeout=120) as client:
                measure(client, job_id, repeats=args.repeats)
        finally:
            with sessions.begin() as session:
                delete_job_rows(session, job_id=job_id)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
