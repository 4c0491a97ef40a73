"""``signdigits bench-web``: how fast the web answers with a large job in the database.

Measures, against a real uvicorn, the embedded (or configured) broker and real workers:
``GET /api/jobs/{id}/images`` first page and page 500 of a 100,000-image job, a
thumbnail, and ``POST /api/predict`` idle and while a 10,000-image job runs (medians).
The large job's rows are written directly, as finished rows with synthetic results,
over real files (hard links to the dataset), so measuring it costs no classification.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass
class WebBenchResult:
    rows: int
    first_page_ms: float
    page_500_ms: float
    thumbnail_ms: float
    predict_idle_ms: float
    predict_busy_ms: float
    predict_busy_max_ms: float
    busy_job_images: int


def _median_ms(call, times: int) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _insert_finished_job(sessions, folder: Path, *, model_version: str) -> str:
    """A job over ``folder`` whose rows are all done, with synthetic digits and confidences."""
    from sqlalchemy import update

    from signdigits.db.batches import refresh_batch_counts
    from signdigits.db.manifest import add_manifest
    from signdigits.db.models import Image, Job, utcnow
    from signdigits.producer.scan import scan_folder

    paths = [p for p in scan_folder(folder) if isinstance(p, str)]  # no unlistable folders
    job_id = uuid.uuid4().hex
    with sessions.begin() as session:
        session.add(Job(id=job_id, root=str(folder), threshold=0.5, batch_size=128,
                        total_images=len(paths), total_batches=(len(paths) + 127) // 128,
                        model_version=model_version))
        session.flush()
        for start in range(0, len(paths), 5120):
            add_manifest(session, job_id=job_id, rows=[
                (n // 128, path) for n, path in enumerate(paths[start:start + 5120], start)])
    rng = random.Random(1)
    with sessions.begin() as session:
        for digit in range(10):
            confidence = rng.random()
            session.execute(
                update(Image).where(Image.job_id == job_id, Image.id % 10 == digit)
                .values(status="done", digit=digit, confidence=(Image.id % 997) / 997.0
                        * confidence, below_threshold=False, finished_at=utcnow(),
                        probabilities=[0.1] * 10, model_version=model_version)
                .execution_options(synchronize_session=False))
        refresh_batch_counts(session, job_id=job_id)  # what the workers' stores would do
    return job_id


def run_web_bench(*, rows: int, busy_images: int, workers: int, database_url: str | None,
                  source: Path, repeats: int = 20) -> WebBenchResult:
    import httpx

    from signdigits.bench.model import build_folder
    from signdigits.bench.web_thread import web_in_thread
    from signdigits.config.settings import Settings, get_settings
    from signdigits.db.migrate import upgrade
    from signdigits.db.session import session_factory
    from signdigits.serving.artifact import read_model_info, resolve_model_path
    from signdigits.stack.local import LocalStack
    from signdigits.worker.readiness import wait_for_models

    base = get_settings()
    scratch = Path(tempfile.mkdtemp(prefix="signdigits-bench-web-"))
    database_url = database_url or f"sqlite:///{scratch / 'bench.db'}"
    upgrade(database_url)
    sessions = session_factory(database_url)
    model = read_model_info(resolve_model_path(base.model_path))
    big, busy = scratch / "big", scratch / "busy"
    build_folder(source, big, rows)
    build_folder(source, busy, busy_images)
    job_id = _insert_finished_job(sessions, big, model_version=model.version)
    name = f"bench-web-{uuid.uuid4().hex[:6]}@%h"
    stack = LocalStack(broker_url=base.broker_url, database_url=database_url,
                       concurrency=workers, name=name)
    try:
        settings = Settings(**{**base.model_dump(), "broker_url": stack.start(),
                               "database_url": database_url, "upload_dir": scratch / "up"})
        from signdigits.broker.app import create_app as celery_app

        worker = stack.worker
        assert worker is not None  # started by stack.start()
        wait_for_models(celery_app(settings), name=name.replace("%h", _hostname()),
                        alive=worker.alive)
        with web_in_thread(settings) as url, httpx.Client(base_url=url,
                                                           timeout=60) as client:
            return _measure(client, job_id=job_id, busy=busy, busy_images=busy_images,
                            rows=rows, repeats=repeats, photo=next(source.rglob("*.JPG")))
    finally:
        stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _measure(client, *, job_id: str, busy: Path, busy_images: int, rows: int, repeats: int,
             photo: Path) -> WebBenchResult:
    images = f"/api/jobs/{job_id}/images"
    params = {"order": "confidence", "limit": 100}
    first = _median_ms(lambda: client.get(images, params=params).raise_for_status(), repeats)
    cursor = None
    for _ in range(min(499, rows // 100 - 1)):  # page 500's cursor, walked as a client would
        cursor = client.get(images, params={**params, **({"cursor": cursor} if cursor else {})}
                            ).json()["next_cursor"]
    if cursor is None:
        raise ValueError("page 500 needs a job of at least 50,000 rows (--rows)")
    deep = _median_ms(lambda: client.get(images, params={**params, "cursor": cursor})
                      .raise_for_status(), repeats)
    some = client.get(images, params={"limit": repeats}).json()["items"]
    ids = iter([image["id"] for image in some] * 2)
    thumbnail = _median_ms(lambda: client.get(f"/api/images/{next(ids)}/thumbnail")
                           .raise_for_status(), repeats)
    data = photo.read_bytes()

    def predict() -> None:
        client.post("/api/predict", files={"file": (photo.name, data)}).raise_for_status()

    predict()  # the worker's first call at this batch size
    idle = _median_ms(predict, repeats)
    job = client.post("/api/jobs", json={"folder": str(busy)}).json()
    samples = []
    def still_busy() -> bool:  # still walking (the answer came before it ended), or 90% to go
        now = client.get(f"/api/jobs/{job['id']}").json()
        return now["state"] == "submitting" or now["pending"] > busy_images // 10

    while still_busy():
        started = time.perf_counter()
        predict()
        samples.append((time.perf_counter() - started) * 1000)
    return WebBenchResult(rows, first, deep, thumbnail, idle,
                          statistics.median(samples) if samples else float("nan"),
                          max(samples, default=float("nan")), busy_images)
