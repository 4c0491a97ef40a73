"""A cancel that lands while the producer is still walking the folder (issue 32, item 8).

The answer (API and CLI) and the job's ``done`` event come after the walk has stopped:
every row it recorded is cancelled, none pending, and the total no longer grows. A real
uvicorn in this process (so the walk's thread can be joined), a real Valkey, SQLite and
PostgreSQL; no workers (nothing would finish the rows, so any pending one shows).
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from signdigits.config.settings import Settings
from signdigits.db.models import Image, Job
from signdigits.db.session import session_factory
from tests.conftest import make_env, run_cli
from tests.figures import record
from tests.web_server import serving, sse_until_done

WALKED = 5_000


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """5,000 empty files named as photos: the walk lists them, it never reads them."""
    folder = tmp_path_factory.mktemp("walk") / "photos"
    folder.mkdir()
    for i in range(WALKED):
        (folder / f"{i:05d}.jpg").touch()
    return folder


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def web(request, redis_url, tmp_path_factory):
    import redis

    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'results.db'}"
    else:
        database_url = request.getfixturevalue("postgres_url")
    broker_url = redis_url.rsplit("/", 1)[0] + "/13"
    settings = Settings(broker_url=broker_url, database_url=database_url)
    try:
        with serving(settings) as client:
            client.database = request.param
            yield client
    finally:
        redis.Redis.from_url(broker_url).flushdb()


def _rows(settings: Settings, job_id: str) -> dict[str, int]:
    with session_factory(settings.database_url)() as session:
        counted = session.execute(
            select(Image.status, func.count()).where(Image.job_id == job_id)
            .group_by(Image.status)).all()
        job = session.get_one(Job, job_id)
        return {**{str(status): n for status, n in counted}, "walk_over": int(
            job.submitted_at is not None), "total_images": job.total_images}


def _join_walks(timeout: float = 60) -> None:
    """The walk threads of this process, ended (the test's proof that no row comes later)."""
    for thread in threading.enumerate():
        if thread.name.startswith("walk "):
            thread.join(timeout)
            assert not thread.is_alive(), f"{thread.name} still running after {timeout} s"


@pytest.mark.parametrize("trial", range(5))
def test_a_cancel_during_the_walk_is_answered_once_the_walk_stopped(web, photos, trial):
    submitted = web.post("/api/jobs", json={"folder": str(photos), "batch_size": 50})
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    asked = time.monotonic()
    answer = web.post(f"/api/jobs/{job_id}/cancel")  # the walk has only just begun
    answered = time.monotonic() - asked
    assert answer.status_code == 200, answer.text
    job = answer.json()
    rows_then = _rows(web.settings, job_id)
    _join_walks()
    rows_after = _rows(web.settings, job_id)
    # Answered after the walk stopped: its end recorded, nothing pending, nothing added.
    assert rows_then["walk_over"] == 1, rows_then
    assert rows_after == rows_then
    assert "pending" not in rows_after, rows_after
    assert job["state"] == "cancelled" and job["pending"] == 0, job
    assert job["total_images"] == job["cancelled"] == rows_after["cancelled"] \
        == rows_after["total_images"], (job, rows_after)
    assert 0 < job["total_images"] <= WALKED
    record(f"cancel during a {WALKED:,}-image walk ({web.database}, trial {trial})", {
        "rows walked": job["total_images"], "cancelled": job["cancelled"], "pending": 0,
        "answered after s": round(answered, 2)})
    done = sse_until_done(web, job_id, timeout=30)[-1][1]
    assert done["state"] == "cancelled"
    assert done["total_images"] == job["total_images"] and done["pending"] == 0, done


def test_cancel_from_the_command_line_waits_for_a_walk_held_at_the_queue(web, photos,
                                                                         tmp_path):
    """An ``--inline`` job with no worker is held at SIGNDIGITS_INLINE_MAX_QUEUED_BYTES
    (its producer waits for workers): `cancel` answers once that producer has stopped."""
    import subprocess
    import sys

    settings = web.settings
    env = make_env(broker_url=settings.broker_url, database_url=settings.database_url,
                   inline_max_queued_bytes="1")
    submit = subprocess.Popen(
        [sys.executable, "-m", "signdigits", "submit", str(photos), "--inline",
         "--batch-size", "50"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        assert submit.stdout is not None
        lines = []
        for line in submit.stdout:  # its own words that it waits: the walk is mid-way
            lines.append(line)
            if "waiting for workers" in line:
                break
        else:
            raise AssertionError("".join(lines))
        job_id = next(j["id"] for j in web.get("/api/jobs").json()["items"]
                      if j["state"] == "submitting")
        cancelled = run_cli("cancel", job_id, env=env, cwd=tmp_path, timeout=60)
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        rows = _rows(settings, job_id)
        assert rows["walk_over"] == 1 and "pending" not in rows, (rows, cancelled.stdout)
        assert f"job {job_id}: cancelled, {rows['cancelled']:,} pending images skipped, " \
               f"of {rows['total_images']:,}" in cancelled.stderr
        assert submit.wait(60) == 0
    finally:
        if submit.poll() is None:
            submit.kill()
        submit.communicate()
