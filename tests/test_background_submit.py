"""``producer.background``: a folder's submission started in a thread, answered with its
job id once the row exists. SQLite and a real Valkey; no workers."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import func, select

from signdigits.broker.app import create_app
from signdigits.config.settings import Settings
from signdigits.db.migrate import upgrade
from signdigits.db.models import Image, Job
from signdigits.db.session import session_factory
from signdigits.producer import walk
from signdigits.producer.background import submit_in_background
from signdigits.producer.scan import FolderError
from signdigits.producer.submit import SubmissionError
from tests.waiting import wait_until


@pytest.fixture
def producer(redis_url, tmp_path):
    """Settings on a Valkey database of its own (flushed after), a migrated SQLite file."""
    import redis

    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    settings = Settings(broker_url=redis_url.rsplit("/", 1)[0] + "/14", database_url=url)
    yield settings, session_factory(url)
    redis.Redis.from_url(settings.broker_url).flushdb()


def _photos(tmp_path, count: int):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(count):
        (folder / f"{i:05d}.jpg").write_bytes(b"")
    return folder


def _jobs(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Job))


def test_the_id_comes_once_the_row_exists_while_the_walk_goes_on(producer, tmp_path,
                                                                 monkeypatch):
    """The walk is held at its first enqueue: the id is answered all the same."""
    settings, sessions = producer
    folder = _photos(tmp_path, 6000)  # more than one manifest part
    held, enqueue = threading.Event(), walk.enqueue_batches

    def held_enqueue(*args, **kwargs):
        assert held.wait(60), "never released"
        return enqueue(*args, **kwargs)

    monkeypatch.setattr(walk, "enqueue_batches", held_enqueue)
    job_id = submit_in_background(folder, settings=settings, sessions=sessions,
                                  app=create_app(settings), batch_size=50)
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job.submitted_at is None and job.producer  # "submitting"
    held.set()
    job = wait_until(lambda: _submitted(sessions, job_id), timeout=60, interval=0.05,
                     message="the walk's end")
    assert job.total_images == 6000 and job.submission_stopped is None
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Image)) == 6000


def _submitted(sessions, job_id: str) -> Job | None:
    with sessions() as session:
        job = session.get(Job, job_id)
        return job if job.submitted_at is not None else None


def test_a_folder_that_cannot_be_submitted_raises_and_records_nothing(producer, tmp_path):
    settings, sessions = producer
    (tmp_path / "empty").mkdir()
    with pytest.raises(FolderError, match="no images found"):
        submit_in_background(tmp_path / "empty", settings=settings, sessions=sessions,
                             app=create_app(settings))
    with pytest.raises(FolderError, match="no such folder"):
        submit_in_background(tmp_path / "missing", settings=settings, sessions=sessions,
                             app=create_app(settings))
    assert _jobs(sessions) == 0


def test_a_broker_that_is_down_raises_and_records_nothing(producer, tmp_path):
    settings, sessions = producer
    down = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with pytest.raises(SubmissionError, match="cannot reach the broker.*nothing was recorded"):
        submit_in_background(_photos(tmp_path, 3), settings=down, sessions=sessions,
                             app=create_app(down))
    assert _jobs(sessions) == 0


def test_a_walk_that_fails_after_the_row_is_logged_and_recorded(producer, tmp_path,
                                                                monkeypatch, caplog):
    """The caller has its id by then; the job says why it stopped, and resume takes it."""
    settings, sessions = producer
    caplog.set_level(logging.ERROR, logger="signdigits.producer.background")

    def lost(*_args, **_kwargs):
        raise RuntimeError("the broker went away")

    monkeypatch.setattr(walk, "enqueue_batches", lost)
    folder = _photos(tmp_path, 10)
    job_id = submit_in_background(folder, settings=settings, sessions=sessions,
                                  app=create_app(settings))
    wait_until(lambda: any("stopped" in r.getMessage() for r in caplog.records), timeout=60,
               interval=0.05, message="the log line")
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"the walk of {folder} stopped: job {job_id}: submission stopped")
    assert "the broker went away" in line
    with sessions() as session:
        job = session.get(Job, job_id)
        assert "RuntimeError: the broker went away" in job.submission_stopped
        assert job.submitted_at is None and job.producer is None  # resume may take it
