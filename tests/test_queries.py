"""A worker's writes against both databases: what a store leaves in the rows."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, update

from signdigits.db.images import ImageFilter, images_page
from signdigits.db.jobs import cancel_job, create_job
from signdigits.db.manifest import add_manifest, add_unreachable
from signdigits.db.migrate import upgrade
from signdigits.db.models import Image, ImageStatus, Job, utcnow
from signdigits.db.progress import summarize_job
from signdigits.db.results import store_results
from signdigits.db.session import session_factory, worker_session_factory


def job_of_pending_images(database_url: str, names: list[str], batch_size: int = 0):
    """A migrated database holding one job whose images are pending, ``batch_size`` to a
    batch (all in batch 0 by default)."""
    upgrade(database_url)
    sessions = session_factory(database_url)
    size = batch_size or len(names)
    job = Job(id=uuid.uuid4().hex, root="/photos", threshold=0.5, batch_size=size,
              total_images=len(names), total_batches=-(-len(names) // size),
              model_version="m1", inline=False)
    with sessions.begin() as session:
        create_job(session, job=job)
        add_manifest(session, job_id=job.id,
                     rows=[(n // size, name) for n, name in enumerate(names)])
    return sessions, job


# A hand as serving.preview.hand_record stores it (fewer landmarks: the shape is what counts).
HAND = {"hands": [{"box": [12, 30, 160, 201], "landmarks": [[12.5, 201.0], [160.0, 30.0]],
                   "region": {"center": [85.0, 115.5], "side": 240.2, "rotation": -0.1234},
                   "presence": 0.9987, "padded": True, "digit": 7, "confidence": 0.123457}]}


def test_store_results_writes_each_image_once(database_url):
    sessions, job = job_of_pending_images(database_url, ["a.jpg", "b.jpg", "c.jpg"])
    with sessions() as session:
        a, b, c = session.scalars(
            select(Image.id).where(Image.job_id == job.id).order_by(Image.path)
        )
    now = utcnow()
    common = {"worker": "w@host", "model_version": "m1", "finished_at": now, "attempts": 2}
    done = {"id": a, **common, "status": ImageStatus.DONE, "digit": 7, "class_index": 3,
            "confidence": 0.123456789012345, "below_threshold": True,
            "probabilities": [0.05] * 9 + [0.55], "error": None, "hand": HAND,
            "reading": "hand landmarks, on a padded copy"}
    unreadable = {"id": b, **common, "status": ImageStatus.ERROR, "digit": None,
                  "class_index": None, "confidence": None, "below_threshold": None,
                  "probabilities": None, "error": "cannot decode: it's \"broken\" (é)",
                  "hand": None, "reading": None}
    # What a batch that gave up stores: fewer columns than a classified row.
    gave_up = {"id": c, "worker": "w@host", "finished_at": now, "status": ImageStatus.ERROR,
               "error": "gave up after 3 attempts", "attempts": 3}

    workers = worker_session_factory(database_url)
    with workers.begin() as session:
        store_results(session, job_id=job.id, batch=0, rows=[done, unreadable])
    with workers.begin() as session:  # the same batch delivered again, with other results
        store_results(session, job_id=job.id, batch=0,
                      rows=[{**done, "digit": 1}, {**unreadable, "error": "other"}])
    with workers.begin() as session:
        store_results(session, job_id=job.id, batch=0, rows=[gave_up])

    with sessions() as session:
        rows = {r.id: r for r in session.scalars(select(Image).where(Image.job_id == job.id))}
    assert (rows[a].status, rows[a].digit, rows[a].class_index) == ("done", 7, 3)
    assert rows[a].confidence == 0.123456789012345 and rows[a].below_threshold is True
    assert rows[a].probabilities == [0.05] * 9 + [0.55]
    assert rows[a].hand == HAND and rows[a].reading == "hand landmarks, on a padded copy"
    assert (rows[a].worker, rows[a].model_version, rows[a].attempts) == ("w@host", "m1", 2)
    assert rows[a].finished_at.replace(tzinfo=now.tzinfo) == now
    assert rows[b].status == "error" and rows[b].error == "cannot decode: it's \"broken\" (é)"
    assert rows[b].digit is None and rows[b].probabilities is None
    assert rows[b].hand is None and rows[b].reading is None  # JSON null would be "null"
    assert (rows[c].status, rows[c].error, rows[c].attempts) == (
        "error", "gave up after 3 attempts", 3
    )
    assert rows[c].model_version is None and rows[c].digit is None


def test_confidence_pages_cover_every_row_once_across_ties(database_url):
    """Keyset pages in confidence order: ties on a page boundary, unscored rows last."""
    sessions, job = job_of_pending_images(database_url, [f"{n:02}.jpg" for n in range(23)])
    with sessions.begin() as session:
        ids = list(session.scalars(select(Image.id).where(Image.job_id == job.id)
                                   .order_by(Image.id)))
        for n, image_id in enumerate(ids[:20]):  # 4 distinct confidences, 5 rows each
            session.execute(update(Image).where(Image.id == image_id).values(
                status="done", digit=n % 10, confidence=[0.9, 0.2, 0.5, 0.2][n % 4]))
    seen, cursor = [], None
    with sessions() as session:
        for _ in range(len(ids) // 3 + 2):  # bounded: a cursor repeating a page fails
            rows, cursor = images_page(session, job_id=job.id, where=ImageFilter(),
                                       order="confidence", limit=3, cursor=cursor)
            seen += [(r.confidence, r.id) for r in rows]
            if cursor is None:
                break
        else:
            pytest.fail(f"the pages never ended: {len(seen)} rows of {len(ids)}")
    scored = sorted((c, i) for c, i in seen if c is not None)
    assert seen == scored + [(None, i) for i in ids[20:]]
    assert sorted(i for _, i in seen) == ids


def test_the_summary_agrees_with_the_rows_through_a_jobs_life(database_url):
    """The per-batch counts a summary adds up, after stores, a second delivery, rows the
    walk could not list, and a cancel: each time equal to a count of the image rows."""
    sessions, job = job_of_pending_images(database_url, [f"{n}.jpg" for n in range(6)],
                                          batch_size=3)

    def summary_and_rows():
        with sessions() as session:
            summary = summarize_job(session, job=session.get(Job, job.id), stall_seconds=60)
            by_status = dict(session.execute(
                select(Image.status, func.count()).where(Image.job_id == job.id)
                .group_by(Image.status)).all())
            below = session.scalar(select(func.count()).where(
                Image.job_id == job.id, Image.below_threshold.is_(True)))
        counted = (summary.total, summary.pending, summary.done, summary.errors,
                   summary.cancelled, summary.below_threshold)
        return counted, (sum(by_status.values()), by_status.get("pending", 0),
                         by_status.get("done", 0), by_status.get("error", 0),
                         by_status.get("cancelled", 0), below), summary

    counted, rows, summary = summary_and_rows()
    assert counted == rows == (6, 6, 0, 0, 0, 0)  # no producer recorded: "submission interrupted"
    with sessions() as session:
        first = list(session.scalars(select(Image.id).where(Image.job_id == job.id,
                                                            Image.batch == 0)))
    now = utcnow()
    results = [{"id": i, "status": ImageStatus.DONE, "confidence": c, "below_threshold": c < 0.5,
                "error": None, "finished_at": now}
               for i, c in zip(first[:2], [0.9, 0.3], strict=True)]
    results.append({"id": first[2], "status": ImageStatus.ERROR, "confidence": None,
                    "below_threshold": None, "error": "unreadable", "finished_at": now})
    for _ in range(2):  # the second delivery of batch 0 changes nothing
        with sessions.begin() as session:
            store_results(session, job_id=job.id, batch=0, rows=results)
            session.get(Job, job.id).submitted_at = now
    with sessions.begin() as session:
        add_unreachable(session, job_id=job.id, rows=[("locked/", "permission denied")])
    counted, rows, summary = summary_and_rows()
    assert counted == rows == (7, 3, 2, 2, 0, 1) and summary.state == "running"
    assert summary.last_finished is not None

    with sessions.begin() as session:
        assert cancel_job(session, job_id=job.id) == 3
    counted, rows, summary = summary_and_rows()
    assert counted == rows == (7, 0, 2, 2, 3, 1) and summary.state == "cancelled"


@pytest.mark.parametrize("where", [ImageFilter(digit=7), ImageFilter(below_threshold=True),
                                   ImageFilter()])
@pytest.mark.parametrize("order", ["confidence", "id"])
def test_filtered_pages_are_read_from_an_index_in_their_order(sqlite_url, where, order):
    """Filtered pages read the job's rows until a page of matches was found, or all of
    them to sort (324 ms on 200,000 rows): SQLite's plan (the one it makes without
    statistics, as in use) must find the page's rows by an index that holds the job, the
    filter and the order, with no sort of its own."""
    from sqlalchemy import event

    from signdigits.db.session import engine_for

    sessions, job = job_of_pending_images(sqlite_url, [f"{n}.jpg" for n in range(20)])
    statements: list[tuple[str, object]] = []

    def seen(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    engine = engine_for(sqlite_url)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with sessions() as session:
            images_page(session, job_id=job.id, where=where, order=order, limit=5, cursor=None)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert statements
    with engine.connect() as connection:
        for statement, parameters in statements:
            plan = " / ".join(row[3] for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters))
            assert "TEMP B-TREE" not in plan and "SCAN" not in plan, plan
            assert "USING INDEX ix_images_job_" in plan and "job_id=?" in plan, plan
            if where.digit is not None:
                assert "digit=?" in plan, plan
            if where.below_threshold is not None:
                assert "below_threshold=?" in plan, plan


def test_rows_recorded_with_the_job_are_not_a_workers_reading(database_url):
    """An upload's photo over the cap (or what the walk could not list) is an error row
    from the start: it had made the job `running` at 923 images/s before any worker."""
    from datetime import timedelta

    sessions, job = job_of_pending_images(database_url, ["a.jpg", "b.jpg"])
    with sessions.begin() as session:
        add_unreachable(session, job_id=job.id, rows=[("big.png", "over the cap")])
        session.get(Job, job.id).submitted_at = utcnow()

    def summary():
        with sessions() as session:
            return summarize_job(session, job=session.get(Job, job.id), stall_seconds=60)

    first = summary()
    assert (first.state, first.total, first.errors, first.rate) == ("queued", 3, 1, None)
    with sessions() as session:
        created = session.get(Job, job.id).created_at
        a = session.scalar(select(Image.id).where(Image.job_id == job.id,
                                                  Image.path == "a.jpg"))
    with sessions.begin() as session:  # a worker reads a.jpg two seconds in
        store_results(session, job_id=job.id, batch=0, rows=[
            {"id": a, "status": ImageStatus.DONE, "confidence": 0.9, "below_threshold": False,
             "error": None, "finished_at": created + timedelta(seconds=2)}])
    second = summary()
    assert second.state == "running" and second.rate == pytest.approx(0.5)  # 1 row in 2 s
