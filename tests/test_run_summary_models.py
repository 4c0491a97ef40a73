"""The summary `run` and `submit --wait` print at a job's end, for a job read by more than
one model (one promoted while it ran, each flagging by its own default threshold): it
names each model with its images and threshold; a job of one model reads as before. The
real function on a real SQLite file, its rows written as the workers would have."""

from __future__ import annotations

from sqlalchemy import update

LATER = "d4" * 8


def _job(tmp_path, *, read_later: int) -> tuple:
    """A job of 10 photos submitted with model "test" (threshold 0.5, its default), the last
    ``read_later`` read by LATER (registered, default threshold 0.8): (summary, settings,
    sessions)."""
    from signdigits.config.settings import Settings
    from signdigits.db.batches import refresh_batch_counts
    from signdigits.db.models import Image, ImageStatus, Job, utcnow
    from signdigits.db.progress import summarize_job
    from signdigits.db.registry import register_model
    from signdigits.db.session import session_factory
    from tests.test_cli_errors import sqlite_with_jobs

    url = sqlite_with_jobs(tmp_path / "sd.db", {"threshold_from_model": True})
    sessions = session_factory(url)
    with sessions.begin() as session:
        register_model(session, version=LATER, name="later", file="later.keras", parent=None,
                       figures={"default_threshold": 0.8})
        job = session.query(Job).one()
        session.execute(update(Image).values(
            status=ImageStatus.DONE, digit=3, confidence=0.7, model_version="test",
            below_threshold=False, finished_at=utcnow()))
        later = [f"{n}.jpg" for n in range(10 - read_later, 10)]
        session.execute(update(Image).where(Image.path.in_(later)).values(
            model_version=LATER, below_threshold=True))
        refresh_batch_counts(session, job_id=job.id)
    settings = Settings(database_url=url, models_dir=tmp_path / "models")
    with sessions() as session:
        summary = summarize_job(session, job=session.query(Job).one(), stall_seconds=120)
    return summary, settings, sessions


def test_the_summary_names_every_model_that_read_the_job(tmp_path, capsys):
    from signdigits.cli.watch import print_summary

    summary, settings, sessions = _job(tmp_path, read_later=4)
    print_summary(summary, settings=settings, sessions=sessions)
    printed = capsys.readouterr().out
    assert ("10 classified, 4 below the threshold of the model that read them, 0 errors, 0 "
            "cancelled, of 10 images") in printed, printed
    assert ("read by 2 models (a model was promoted after it was submitted with test), each "
            f"flagging by its own default threshold: test 6 images, threshold 0.5; {LATER} "
            "4 images, threshold 0.8") in printed, printed


def test_the_summary_of_a_job_read_by_one_model_is_as_it_was(tmp_path, capsys):
    from signdigits.cli.watch import print_summary

    summary, settings, sessions = _job(tmp_path, read_later=0)
    print_summary(summary, settings=settings, sessions=sessions)
    printed = capsys.readouterr().out
    assert "10 classified, 0 below threshold 0.5, 0 errors" in printed, printed
    assert "read by" not in printed
