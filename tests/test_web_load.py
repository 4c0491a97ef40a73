"""The web under many jobs and many waiters, against a real uvicorn.

- The jobs page follows all its jobs on one event stream: in Chromium, 20 unfinished jobs
  (one stream each had used up the browser's 6 connections to the server, and the page's
  other requests never finished).
- Predictions wait for a worker without holding a thread, and only so many at once.
- An event stream whose database goes away ends with an ``error`` event and a complete
  body, and the server logs no traceback.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import Stack, require
from tests.figures import record
from tests.waiting import wait_until
from tests.web_server import CHROMIUM, serving

PAGE_WAIT = 30_000  # ms: what the page gets to show a change (each is one tick, 1 s)


def record_unfinished_jobs(database_url: str, count: int) -> list[str]:
    """``count`` queued jobs of 3 pending rows in 2 batches, recorded directly: no broker
    message, no worker, so they stay unfinished (and soon stalled)."""
    from signdigits.db.jobs import create_job
    from signdigits.db.manifest import add_manifest
    from signdigits.db.models import Job, utcnow
    from signdigits.db.session import session_factory

    ids = []
    with session_factory(database_url).begin() as session:
        for _ in range(count):
            job = Job(id=uuid.uuid4().hex, root="/nowhere", threshold=0.5, batch_size=2,
                      total_images=3, total_batches=2, model_version="m",
                      submitted_at=utcnow())
            create_job(session, job=job)
            add_manifest(session, job_id=job.id, rows=[(0, "a.jpg"), (0, "b.jpg"),
                                                       (1, "c.jpg")])
            ids.append(job.id)
    return ids


def finish_batch(database_url: str, job_id: str, batch: int) -> None:
    """The batch's rows stored as a worker stores them."""
    from signdigits.db.images import ImageFilter, images_page
    from signdigits.db.models import ImageStatus, utcnow
    from signdigits.db.results import store_results
    from signdigits.db.session import session_factory

    sessions = session_factory(database_url)
    with sessions() as session:
        rows, _ = images_page(session, job_id=job_id, where=ImageFilter(), order="id",
                              limit=10, cursor=None)
    ids = [row.id for row in rows if row.batch == batch]
    with sessions.begin() as session:
        store_results(session, job_id=job_id, batch=batch, rows=[
            {"id": i, "status": ImageStatus.DONE, "digit": 4, "confidence": 0.9,
             "below_threshold": False, "finished_at": utcnow(), "worker": "test"}
            for i in ids])


def test_the_jobs_page_follows_20_unfinished_jobs_on_one_stream(redis_url, tmp_path):
    """With one stream per job, a fetch from the page and a click on a job never ended."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (scripts/test installs it)")
    from signdigits.config.settings import Settings
    from signdigits.db.migrate import upgrade

    database_url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(database_url)
    ids = record_unfinished_jobs(database_url, 20)
    settings = Settings(broker_url=redis_url, database_url=database_url,
                        upload_dir=tmp_path / "uploads")
    with serving(settings) as client, playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = chromium.new_page()
            page.goto(f"{client.base_url}/")
            page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length == 20",
                                   timeout=PAGE_WAIT)
            shown = page.eval_on_selector_all("#jobs tbody tr", "rows => rows.map(r => r.id)")
            assert sorted(shown) == sorted(f"job-{i}" for i in ids)
            # Every unfinished job is followed, and the page still has connections to spare.
            page.evaluate("() => { fetch('/api/jobs?limit=1').then(r => { "
                          "window.fetched = r.status; }); }")
            page.wait_for_function("window.fetched === 200", timeout=PAGE_WAIT)
            changed = ids[7]
            finish_batch(database_url, changed, 0)
            stored = time.monotonic()
            page.wait_for_selector(f"#job-{changed} .muted:text-is('2 / 3')", timeout=PAGE_WAIT)
            shown_after = time.monotonic() - stored
            page.wait_for_selector(f"#job-{changed} td.state:has-text('running')",
                                   timeout=PAGE_WAIT)
            # A job created after the page opened appears on it, from the same stream.
            [new] = record_unfinished_jobs(database_url, 1)
            page.wait_for_selector(f"#jobs tbody tr:first-child#job-{new}", timeout=PAGE_WAIT)
            page.click(f"#job-{changed} a")
            page.wait_for_selector("#state:has-text('running')", timeout=PAGE_WAIT)
            page.wait_for_function("document.querySelectorAll('#grid .tile').length == 3",
                                   timeout=PAGE_WAIT)
        finally:
            chromium.close()
    record("jobs page with 20 unfinished jobs (Chromium)", {
        "rows shown": 20, "fetch from the page": "200", "a stored batch shown after":
        f"{shown_after:.1f} s", "job page opened": "yes"})


def _photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "tan").save(buffer, format="PNG")
    return buffer.getvalue()


def test_waiting_predictions_hold_no_thread_and_past_the_bound_are_refused_at_once(
        redis_url, tmp_path):
    """45 waiting predictions had taken 40 threads of 40: /healthz waited 27.5 s."""
    import redis

    from signdigits.broker.app import PREDICT_QUEUE
    from signdigits.config.settings import Settings

    bound = 45  # more than the 40 threads synchronous routes share
    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'r.db'}", tmp_path)  # and no worker
    broker = redis.Redis.from_url(stack.broker_url)
    settings = Settings(broker_url=stack.broker_url, database_url=stack.database_url,
                        upload_dir=tmp_path / "uploads", predict_timeout=120,
                        predict_max_waiting=bound)
    photo = _photo()
    with serving(settings) as client, ThreadPoolExecutor(bound) as pool:
        def predict() -> httpx.Response:
            return client.post("/api/predict", files={"file": ("hand.png", photo)})

        waiting = [pool.submit(predict) for _ in range(bound)]
        wait_until(lambda: broker.llen(PREDICT_QUEUE) == bound, timeout=60,
                   message=f"{bound} predictions sent to the predict queue")
        for _ in range(5):
            refused = predict()
            assert refused.status_code == 503, refused.text
            assert refused.json() == {"detail": f"{bound} predictions are already waiting for "
                                                "a worker (SIGNDIGITS_PREDICT_MAX_WAITING); "
                                                "try again later"}
        assert client.get("/healthz", timeout=60).json() == {"ok": True}
        assert not any(f.done() for f in waiting), "a waiter ended before /healthz answered"
        assert broker.llen(PREDICT_QUEUE) == bound  # the refused ones sent nothing
        # Answer the waiters as a failing worker would: each was waiting for its reply.
        for raw in broker.lrange(PREDICT_QUEUE, 0, -1):
            body = json.loads(base64.b64decode(json.loads(raw)["body"]))
            broker.rpush(body[1]["reply_to"], json.dumps({"failed": "answered by the test"}))
        answers = [f.result() for f in waiting]
    record("predictions with no worker, bound 45", {
        "waiting": bound, "refused at once": 5, "/healthz": "answered while 45 waited"})
    assert {(a.status_code, a.json()["detail"]) for a in answers} == {
        (503, "the worker failed to classify it: answered by the test")}


def _read_events(lines) -> list[tuple[str, str]]:
    """(event name, data) pairs until the body ends; a ``retry:`` line is kept as an event."""
    events, name = [], "message"
    for line in lines:
        if line.startswith("retry: "):
            events.append(("retry", line[7:]))
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, line[6:]))
            name = "message"
    return events


def _first_event(lines) -> tuple[str, str]:
    for line in lines:
        if line.startswith("data: "):
            return "data", line[6:]
    raise AssertionError("the stream ended before its first event")


def test_event_streams_end_cleanly_when_the_database_goes_away(redis_url, tmp_path, caplog):
    """A traceback ("Exception in ASGI application") and a body cut mid-chunk, before."""
    require(bool(shutil.which("initdb") and shutil.which("pg_ctl")),
            "initdb/pg_ctl not found: cannot start a private PostgreSQL")
    from signdigits.config.settings import Settings
    from tests.test_faults import PrivatePostgres

    server_log = logging.getLogger("uvicorn.error")
    server_log.addHandler(caplog.handler)
    pg = PrivatePostgres()
    try:
        pg.start()
        from signdigits.db.migrate import upgrade

        upgrade(pg.url)
        [job_id] = record_unfinished_jobs(pg.url, 1)
        settings = Settings(broker_url=redis_url, database_url=pg.url,
                            upload_dir=tmp_path / "uploads")
        caplog.set_level(logging.INFO)
        timeout = httpx.Timeout(60, read=60)
        with serving(settings) as client, \
                client.stream("GET", f"/api/jobs/{job_id}/events", timeout=timeout) as one, \
                client.stream("GET", "/api/events", params={"job": job_id},
                              timeout=timeout) as every:
            streams = [one.iter_lines(), every.iter_lines()]
            for lines in streams:
                assert json.loads(_first_event(lines)[1])["id"] == job_id
            pg.stop()
            # httpx raises RemoteProtocolError on a chunked body cut short.
            endings = [_read_events(lines) for lines in streams]
            for events in endings:
                assert events[-2:] == [("retry", "5000"), ("error", json.dumps(
                    {"detail": "database unavailable; the stream ends and the page "
                               "reconnects"}))], events
            pg.start()  # and the client's reconnection is served again
            with client.stream("GET", f"/api/jobs/{job_id}/events", timeout=timeout) as again:
                assert again.status_code == 200
                assert json.loads(_first_event(again.iter_lines())[1])["state"] == "queued"
    finally:
        server_log.removeHandler(caplog.handler)
        pg.remove()
    assert not [r for r in caplog.records if r.exc_info or "Exception in ASGI" in r.message]
    ended = [r.message for r in caplog.records if "event stream ended" in r.message]
    assert len(ended) == 2, ended
    record("PostgreSQL stopped under 2 event streams", {
        "ended with error + retry": 2, "tracebacks": 0, "complete bodies": 2,
        "reconnected after the restart": "yes"})


def test_the_stream_of_many_jobs_refuses_ids_it_cannot_follow(redis_url, tmp_path):
    from signdigits.config.settings import Settings

    settings = Settings(broker_url=redis_url, database_url=f"sqlite:///{tmp_path / 'r.db'}",
                        upload_dir=tmp_path / "uploads")
    with serving(settings) as client:
        for params, detail in [
            ({"job": ["a" * 32] * 201}, "query.job: List should have at most 200 items"),
            ({"job": "latest"}, "query.job.0: String should match pattern"),
            ({"after": "ABC"}, "query.after: String should match pattern"),
        ]:
            refused = client.get("/api/events", params=params)
            assert refused.status_code == 422 and refused.json()["detail"].startswith(detail), (
                refused.text)
        # An id no job has is followed as nothing: the stream goes on, saying so.
        with client.stream("GET", "/api/events", params={"job": "a" * 32}) as stream:
            lines = stream.iter_lines()
            assert [next(lines) for _ in range(3)] == ["retry: 5000", "", ": nothing changed"]


def test_the_pages_come_back_to_their_streams_after_a_database_outage(redis_url, tmp_path):
    """A refused reconnection (a 503 while the database was down) closed the job page's
    stream for good: nothing it showed moved again."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (scripts/test installs it)")
    require(bool(shutil.which("initdb") and shutil.which("pg_ctl")),
            "initdb/pg_ctl not found: cannot start a private PostgreSQL")
    from signdigits.config.settings import Settings
    from signdigits.db.migrate import upgrade
    from tests.test_faults import PrivatePostgres

    pg = PrivatePostgres()
    try:
        pg.start()
        upgrade(pg.url)
        [job_id] = record_unfinished_jobs(pg.url, 1)
        settings = Settings(broker_url=redis_url, database_url=pg.url,
                            upload_dir=tmp_path / "uploads")
        with serving(settings) as client, playwright_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM,
                                                  args=["--no-sandbox"])
            try:
                jobs, job = chromium.new_page(), chromium.new_page()
                jobs.goto(f"{client.base_url}/")
                jobs.wait_for_selector(f"#job-{job_id} .muted:text-is('0 / 3')",
                                       timeout=PAGE_WAIT)
                job.goto(f"{client.base_url}/jobs/{job_id}")
                job.wait_for_selector("#state:has-text('queued')", timeout=PAGE_WAIT)
                # The job page's stream ends with the error event; the browser's own
                # reconnection is then refused while the database is down.
                refused = f"{client.base_url}/api/jobs/{job_id}/events?stored=true"
                with job.expect_response(lambda r: r.url == refused and r.status == 503,
                                         timeout=60_000):
                    pg.stop()
                pg.start()
                finish_batch(pg.url, job_id, 0)
                jobs.wait_for_selector(f"#job-{job_id} .muted:text-is('2 / 3')",
                                       timeout=PAGE_WAIT)
                job.wait_for_selector("#counts:has-text('2 / 3 images')", timeout=PAGE_WAIT)
            finally:
                chromium.close()
    finally:
        pg.remove()
