"""Deleting a job keeps what its rows counted (db/deleted.py, migration 0017): /metrics'
counters (db.metrics.image_counts) never fall, whichever path deletes the job (the web's
and the CLI's delete_job, an upload's discard_job), on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select

from signdigits.db.models import UNREACHABLE_BATCH, Batch, Image, ImageStatus, Job, utcnow

# One finished job's rows: (batch, status, below_threshold), a walk's unreadable file too.
FINISHED = ((0, ImageStatus.DONE, False), (0, ImageStatus.DONE, False),
            (0, ImageStatus.DONE, True), (1, ImageStatus.ERROR, None),
            (1, ImageStatus.CANCELLED, None), (UNREACHABLE_BATCH, ImageStatus.ERROR, None))


def _add_job(session, job_id: str, rows, *, sent: bool, webhook_attempts: int | None = None):
    from signdigits.db.batches import refresh_batch_counts

    session.add(Job(id=job_id, root=f"/photos/{job_id}", threshold=0.5, batch_size=3,
                    total_images=len(rows), total_batches=2, model_version="v",
                    webhook_url="https://example.com/h" if webhook_attempts else None,
                    webhook_state="failed" if webhook_attempts else None,
                    webhook_attempts=webhook_attempts))
    session.flush()
    for batch in sorted({b for b, _, _ in rows if b != UNREACHABLE_BATCH}):
        session.add(Batch(job_id=job_id, batch=batch, enqueued_at=utcnow() if sent else None))
    for n, (batch, status, below) in enumerate(rows):
        done = status != ImageStatus.PENDING
        session.add(Image(job_id=job_id, batch=batch, path=f"{n}.jpg", status=status,
                          below_threshold=below, finished_at=utcnow() if done else None))
    session.flush()
    refresh_batch_counts(session, job_id=job_id)


def test_deleting_jobs_keeps_the_counters_and_empties_the_gauge(empty_database_url):
    from signdigits.db.folders import discard_job
    from signdigits.db.jobs import delete_job
    from signdigits.db.metrics import image_counts
    from signdigits.db.migrate import upgrade
    from signdigits.db.session import session_factory

    upgrade(empty_database_url)
    sessions = session_factory(empty_database_url)
    with sessions.begin() as session:
        _add_job(session, "ended", FINISHED, sent=True, webhook_attempts=3)
        # An upload whose submission failed before any batch was sent: discard_job's case.
        _add_job(session, "unsent", ((0, ImageStatus.PENDING, None),) * 2, sent=False)
    with sessions() as session:
        first = image_counts(session)
    totals = {"above_threshold": 2, "below_threshold": 1, "error": 2, "cancelled": 1}
    assert first.totals == totals
    assert first.rows == {**totals, "pending": 2}
    assert (first.webhook_attempts, first.deleted_jobs) == (3, 0)

    with sessions.begin() as session:
        delete_job(session, job_id="ended", finished=True)
    with sessions() as session:
        second = image_counts(session)
    assert second.totals == totals  # the rows went, what they counted stays
    assert second.rows == {"above_threshold": 0, "below_threshold": 0, "error": 0, "cancelled": 0,
                           "pending": 2}
    assert (second.webhook_attempts, second.deleted_jobs) == (3, 1)

    with sessions.begin() as session:
        assert discard_job(session, job_id="unsent", reason="the test's")
    with sessions() as session:
        third = image_counts(session)
        assert session.scalar(select(func.count()).select_from(Image)) == 0
        assert session.scalar(select(func.count()).select_from(Batch)) == 0
    assert third.totals == totals  # pending rows were never counted: nothing to keep
    assert sum(third.rows.values()) == 0
    assert (third.webhook_attempts, third.deleted_jobs) == (3, 2)  # added to, not replaced
