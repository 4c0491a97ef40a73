"""The database side of a worker in isolation: claim and store, without the model.

Claims and stores 10,112 images in batches of 128, as the workers do (worker/batch.py's
claim_batch, db/results.py's store_results on a worker's own sessions), without the
model. Prints wall and CPU seconds of this process and of the database server process
(PostgreSQL on this machine; SQLite is this process). Compare two commits by running it
in a checkout of each. JOB_IMAGES makes the job that large (the same 10,112 are claimed
and stored): a store whose cost grows with the job's size shows here.

    .venv/bin/python -m signdigits.bench.store [DATABASE_URL] [RUNS] [JOB_IMAGES]
        (default postgresql://postgres@127.0.0.1:5432/test 5 10112)

Each run's job is deleted afterwards. Prints one line a run, then the medians (here
PostgreSQL, RUNS 2, JOB_IMAGES 20000)::

    wall 2.783 s  client CPU 0.630 s  server CPU 0.390 s
    wall 2.168 s  client CPU 0.606 s  server CPU 0.380 s
    median: wall 2.476 s  client CPU 0.618 s  server CPU 0.385 s
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid

from signdigits.bench.arguments import database_url, positive_int

IMAGES, BATCH = 10_112, 128
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def one_run(url: str, sessions, workers, *, job_images: int) -> tuple[float, float, float]:
    """(wall, client CPU, server CPU) seconds of claiming and storing IMAGES images."""
    from sqlalchemy import func, select, text

    from signdigits.bench.procstat import cpu_seconds
    from signdigits.db.deleted import delete_job_rows
    from signdigits.db.jobs import create_job
    from signdigits.db.manifest import add_manifest
    from signdigits.db.models import Image, ImageStatus, Job, utcnow
    from signdigits.db.results import store_results
    from signdigits.worker.batch import Delivery, claim_batch

    job = Job(id=uuid.uuid4().hex, root="/nowhere", threshold=0.5, batch_size=BATCH,
              total_images=job_images, total_batches=-(-job_images // BATCH),
              model_version="m", inline=False)
    with sessions.begin() as session:
        create_job(session, job=job)
        add_manifest(session, job_id=job.id,
                     rows=[(i // BATCH, f"{i}.jpg") for i in range(job_images)])
    server = None
    if url.startswith("postgresql"):
        with workers() as session:
            server = session.execute(text("SELECT pg_backend_pid()")).scalar()
    server_before, client_before = cpu_seconds(server) if server else 0.0, time.process_time()
    started = time.perf_counter()
    for batch in range(IMAGES // BATCH):
        claimed = claim_batch(workers, job_id=job.id, batch=batch, delivery=Delivery())
        assert claimed is not None  # a fresh job's batches are all pending
        now = utcnow()
        rows = [{"id": image.id, "worker": "w", "model_version": "m", "finished_at": now,
                 "attempts": claimed.attempt, "status": ImageStatus.DONE, "digit": 3,
                 "class_index": 4, "confidence": 0.9, "below_threshold": False,
                 "probabilities": [0.1] * 10, "error": None} for image in claimed.images]
        with workers.begin() as session:
            store_results(session, job_id=job.id, batch=batch, rows=rows)
    wall = time.perf_counter() - started
    client = time.process_time() - client_before
    server_cpu = cpu_seconds(server) - server_before if server else 0.0
    with sessions.begin() as session:
        left = session.scalar(select(func.count()).where(
            Image.job_id == job.id, Image.status == ImageStatus.PENDING,
            Image.batch < IMAGES // BATCH))
        delete_job_rows(session, job_id=job.id)
    if left:
        raise RuntimeError(f"{left} rows still pending")
    return wall, client, server_cpu


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m signdigits.bench.store",
        description=f"Wall and CPU seconds (this process and the database server's) of "
                    f"claiming and storing {IMAGES:,} images in batches of {BATCH}, as the "
                    f"workers do, without the model.")
    parser.add_argument("url", nargs="?", type=database_url, default=DEFAULT_URL,
                        metavar="DATABASE_URL", help=f"the database (default: {DEFAULT_URL})")
    parser.add_argument("runs", nargs="?", type=positive_int, default=5, metavar="RUNS",
                        help="runs, each a job of its own (default: 5)")
    parser.add_argument("job_images", nargs="?", type=positive_int, default=IMAGES,
                        metavar="JOB_IMAGES", help=f"the job's size; {IMAGES:,} of them are "
                                                   f"claimed and stored (default: {IMAGES})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from sqlalchemy.exc import OperationalError

    from signdigits.db.migrate import upgrade
    from signdigits.db.session import session_factory, shown_url, worker_session_factory

    try:
        upgrade(args.url)
    except OperationalError as exc:
        sys.exit(f"error: {shown_url(args.url)}: {str(exc.orig).strip().splitlines()[0]}")
    sessions, workers = session_factory(args.url), worker_session_factory(args.url)
    job_images = max(IMAGES, args.job_images)
    results = []
    for _ in range(args.runs):
        results.append(one_run(args.url, sessions, workers, job_images=job_images))
        wall, client, server = results[-1]
        print(f"wall {wall:.3f} s  client CPU {client:.3f} s  server CPU {server:.3f} s",
              flush=True)
    print("median: " + "  ".join(
        f"{name} {statistics.median(r[i] for r in results):.3f} s"
        for i, name in enumerate(("wall", "client CPU", "server CPU"))))


if __name__ == "__main__":
    main()
