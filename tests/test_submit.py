"""The producer against a real broker and database, without workers."""

from __future__ import annotations

from sqlalchemy import func, select

from db.migrate import upgrade
from db.models import Image, Job
from db.queries import cancel_job
from db.session import session_factory
from producer.submit import submit_folder
from signdigits.settings import Settings
from worker.app import create_app


def test_producer_stops_walking_when_its_job_is_cancelled(redis_url, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6000):  # more than one manifest part
        (folder / f"{i:05d}.jpg").write_bytes(b"")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    sessions = session_factory(url)
    settings = Settings(broker_url=redis_url.rsplit("/", 1)[0] + "/15", database_url=url)
    app = create_app(settings)

    def cancel_after_first_part(stage: str, found: int) -> None:
        with sessions.begin() as session:
            job = session.scalars(select(Job)).one()
            if found <= 8:  # the first part is four batches of 2
                cancel_job(session, job=job)

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
