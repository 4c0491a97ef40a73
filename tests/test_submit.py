"""The producer against a real broker and database, without workers (its pure rules,
batch sizes and one-line errors, are in ``tests/unit/test_producer.py``)."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from sqlalchemy import func, select

from signdigits.broker.app import create_app
from signdigits.config.settings import Settings
from signdigits.db.jobs import cancel_job
from signdigits.db.migrate import upgrade
from signdigits.db.models import Image, Job
from signdigits.db.session import session_factory
from signdigits.producer.submit import submit_folder


def _folder_of_empty_files_and_a_database(tmp_path):
    """6,000 empty ``.jpg`` files (more than one manifest part) and a migrated SQLite file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6000):
        (folder / f"{i:05d}.jpg").write_bytes(b"")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    return folder, url, session_factory(url)


def _walk_aside(folder, *, settings, sessions, **options) -> tuple[threading.Thread, list]:
    """``submit_folder`` in a thread, so that a walk that hangs fails the test instead of
    hanging it; returns the thread and the list its SubmissionError lands in."""
    from signdigits.producer.submit import SubmissionError

    failures: list = []

    def walk() -> None:
        try:
            submit_folder(folder, settings=settings, sessions=sessions,
                          app=create_app(settings), **options)
        except SubmissionError as exc:
            failures.append(exc)

    walking = threading.Thread(target=walk, daemon=True)
    walking.start()
    return walking, failures


def test_producer_stops_walking_when_its_job_is_cancelled(redis_url, tmp_path):
    folder, url, sessions = _folder_of_empty_files_and_a_database(tmp_path)
    settings = Settings(broker_url=redis_url.rsplit("/", 1)[0] + "/15", database_url=url)
    app = create_app(settings)

    def cancel_after_first_part(stage: str, found: int) -> None:
        with sessions.begin() as session:
            job = session.scalars(select(Job)).one()
            if found <= 8:  # the first part is four batches of 2
                cancel_job(session, job_id=job.id)

    submitted = submit_folder(folder, settings=settings, sessions=sessions, app=app,
                              batch_size=2, progress=cancel_after_first_part)
    with sessions() as session:
        statuses = dict(session.execute(
            select(Image.status, func.count()).group_by(Image.status)).all())
        job = session.get(Job, submitted.job_id)
    assert statuses == {"cancelled": 8}  # not 6,000 rows, none left pending
    assert job.cancelled_at is not None and job.total_images == 8
    import redis

    redis.Redis.from_url(settings.broker_url).flushdb()


@pytest.mark.parametrize("loss", ["killed", "frozen"])
def test_a_broker_lost_mid_walk_leaves_a_job_that_resume_finishes(loss, tmp_path):
    """Frozen (SIGSTOP: it accepts and never answers), the broker hung the walk for good:
    the walk's messages went out without a deadline on the broker's replies."""

    from signdigits.db.progress import summarize_job
    from signdigits.producer.submit import SubmissionError, resume_job
    from tests.conftest import start_valkey

    folder, url, sessions = _folder_of_empty_files_and_a_database(tmp_path)
    broker = start_valkey()
    port = broker.port
    settings = Settings(broker_url=f"redis://127.0.0.1:{port}/0", database_url=url)

    stopped = []

    def lose_broker_after_first_part(stage: str, found: int) -> None:
        if not stopped:
            stopped.append(found)
            if loss == "killed":
                broker.stop()
            else:
                os.kill(broker.process.pid, signal.SIGSTOP)

    try:
        walking, failures = _walk_aside(folder, settings=settings, sessions=sessions,
                                        batch_size=2, progress=lose_broker_after_first_part)
        walking.join(90)
        assert not walking.is_alive(), "the walk hung on a broker that stopped answering"
        assert failures and "resume" in str(failures[0]), failures
        with sessions() as session:
            job = session.scalars(select(Job)).one()
        if loss == "frozen":  # resume, while it is still frozen, fails and gives the job back
            with pytest.raises(SubmissionError, match="cannot reach the broker"):
                resume_job(create_app(settings), sessions=sessions, job=job, settings=settings)
            os.kill(broker.process.pid, signal.SIGCONT)
        with sessions() as session:
            job = session.get(Job, job.id)
            assert summarize_job(session, job=job, stall_seconds=60).state == \
                "submission interrupted"
            assert job.submission_stopped and job.failure is None
        if loss == "killed":
            broker = start_valkey(port=port)
        resume_job(create_app(settings), sessions=sessions, job=job, settings=settings)
        with sessions() as session:
            job = session.get(Job, job.id)
            assert job.submitted_at is not None and job.total_images == 6000
            assert session.scalar(select(func.count(func.distinct(Image.path)))) == 6000
        import redis

        queued = redis.Redis.from_url(settings.broker_url).llen("signdigits")
        if loss == "killed":
            assert queued == job.total_batches  # the lost first part's batches sent again, once
        else:  # a send that timed out may still have arrived: sent twice, stored once
            assert queued >= job.total_batches
    finally:
        if loss == "frozen":
            os.kill(broker.process.pid, signal.SIGCONT)  # whatever happened, nothing hangs
        broker.stop()


@pytest.mark.parametrize("loss", ["flushed", "frozen"])
def test_an_inline_producer_held_back_by_its_cap_stops_when_the_broker_lost_its_messages(
        loss, dataset, tmp_path, monkeypatch):
    """Waiting for room under SIGNDIGITS_INLINE_MAX_QUEUED_BYTES for batches whose messages
    a broker restart had lost, the producer waited for good ("submitting", never stalled),
    and resume refused a job still being submitted. Frozen (SIGSTOP), the broker's answer
    to "do you hold them?" would never come either."""
    import redis

    from signdigits.producer import enqueue
    from signdigits.producer.submit import resume_job
    from tests.conftest import copy_sample, start_valkey

    monkeypatch.setattr(enqueue, "HELD_CHECK_SECONDS", 1.0)  # not 5: a faster test

    copy_sample(dataset, tmp_path / "photos", per_digit=3)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    sessions = session_factory(url)
    broker = start_valkey()
    settings = Settings(broker_url=broker.url, database_url=url,
                        inline_max_queued_bytes=20_000)
    flushed = []

    def lose_the_queue_once_held_back(stage: str, found: int) -> None:
        if "waiting for workers" in stage and not flushed:
            flushed.append(found)
            if loss == "flushed":
                redis.Redis.from_url(broker.url).flushdb()  # a restart without persistence
            else:
                os.kill(broker.process.pid, signal.SIGSTOP)

    try:
        walking, failures = _walk_aside(tmp_path / "photos", settings=settings,
                                        sessions=sessions, batch_size=2, inline=True,
                                        progress=lose_the_queue_once_held_back)
        walking.join(60)
        if loss == "frozen":
            os.kill(broker.process.pid, signal.SIGCONT)  # whatever happened, nothing hangs
        assert flushed, "the producer was never held back by its cap"
        assert not walking.is_alive(), "the producer waits for messages the broker lost"
        assert failures and "resume" in str(failures[0]), failures
        assert loss == "frozen" or "lost them" in str(failures[0]), failures
        with sessions() as session:
            job = session.scalars(select(Job)).one()
        resume_job(create_app(settings.model_copy(update={"inline_max_queued_bytes": 10**9})),
                   sessions=sessions, job=job, settings=settings.model_copy(
                       update={"inline_max_queued_bytes": 10**9}))
        with sessions() as session:
            job = session.get(Job, job.id)
            assert job.submitted_at is not None and job.total_images == 30
        queued = redis.Redis.from_url(broker.url).llen("signdigits")
        assert queued == job.total_batches  # every batch's message is there again, once
    finally:
        broker.stop()
