"""Each migration from 0008 on, up and down again on a database with rows: the rows kept,
the new columns or tables there and then gone (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from signdigits.db.migrate import SCHEMA_HEAD, alembic_config, upgrade
from signdigits.db.session import engine_for
from tests.migrating import add_job, migrating


def test_hand_columns_migration_keeps_the_rows_and_goes_back(empty_database_url):
    """0008 adds images.hand and images.reading to a database with jobs in flight (a done
    row and a pending one keep everything), and takes them away again."""
    from alembic import command

    url = empty_database_url
    engine = engine_for(url)

    to = migrating(engine)

    to("0007", command.upgrade)
    with engine.begin() as connection:
        add_job(connection, "h", total_images=2)
        connection.execute(text(
            "INSERT INTO images (job_id, batch, path, status, attempts, digit, confidence)"
            " VALUES ('h', 0, 'a', 'done', 1, 3, 0.75), ('h', 0, 'b', 'pending', 1, NULL, NULL)"))
    to("0008", command.upgrade)
    columns = [c["name"] for c in inspect(engine).get_columns("images")]
    assert columns[-2:] == ["hand", "reading"]
    with engine.connect() as connection:
        assert connection.execute(text(
            "SELECT path, status, digit, confidence, hand, reading FROM images"
            " WHERE job_id = 'h' ORDER BY path")).all() == [
                ("a", "done", 3, 0.75, None, None), ("b", "pending", None, None, None, None)]
    to("0007", command.downgrade)
    assert not {"hand", "reading"} & {c["name"] for c in inspect(engine).get_columns("images")}
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM images WHERE job_id = 'h'")) == 2
    to("head", command.upgrade)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == SCHEMA_HEAD


def test_hands_migration_keeps_the_rows_and_goes_back(empty_database_url):
    """0011 adds images.digits and images.hand_count (NULL on rows read before) and the
    hands table, one row per hand; down again drops them and keeps every image."""
    from alembic import command

    engine = engine_for(empty_database_url)

    to = migrating(engine)

    to("0008", command.upgrade)
    with engine.begin() as connection:
        add_job(connection, "m", total_images=1)
        connection.execute(text(
            "INSERT INTO images (job_id, batch, path, status, attempts, digit, confidence)"
            " VALUES ('m', 0, 'a', 'done', 1, 3, 0.75)"))
    to("0011", command.upgrade)
    columns = [c["name"] for c in inspect(engine).get_columns("images")]
    assert columns[-2:] == ["digits", "hand_count"]
    with engine.begin() as connection:
        assert connection.execute(text(
            "SELECT digit, digits, hand_count FROM images WHERE job_id = 'm'")).all() == [
                (3, None, None)]
        image_id = connection.scalar(text("SELECT id FROM images WHERE job_id = 'm'"))
        for position in (0, 1):
            connection.execute(text(
                "INSERT INTO hands (image_id, position, x0, y0, x1, y1, digit, confidence,"
                " below_threshold) VALUES (:i, :p, 1, 2, 3, 4, 7, 0.9, false)"),
                {"i": image_id, "p": position})
        with pytest.raises(IntegrityError), connection.begin_nested():  # one hand a place
            connection.execute(text(
                "INSERT INTO hands (image_id, position, x0, y0, x1, y1, digit, confidence,"
                " below_threshold) VALUES (:i, 0, 1, 2, 3, 4, 7, 0.9, false)"),
                {"i": image_id})
    to("0008", command.downgrade)
    assert "hands" not in inspect(engine).get_table_names()
    assert not {"digits", "hand_count"} & {c["name"] for c in inspect(engine).get_columns("images")}
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM images WHERE job_id = 'm'")) == 1


def test_resent_at_migration_keeps_the_batches_and_goes_back(empty_database_url):
    """0009 adds batches.resent_at (the reconciler's record) to a database with a job in
    flight: its batch rows keep their counts, and downgrading takes the column away."""
    from alembic import command

    url = empty_database_url
    engine = engine_for(url)

    to = migrating(engine)

    to("0008", command.upgrade)
    with engine.begin() as connection:
        add_job(connection, "r", total_images=2)
        connection.execute(text(
            "INSERT INTO batches (job_id, batch, attempts, images, done, errors, cancelled,"
            " below_threshold, enqueued_at) VALUES ('r', 0, 1, 2, 1, 0, 0, 0,"
            " CURRENT_TIMESTAMP)"))
    upgrade(url)
    with engine.connect() as connection:
        assert connection.execute(text(
            "SELECT batch, attempts, images, done, resent_at FROM batches WHERE job_id = 'r'"
        )).all() == [(0, 1, 2, 1, None)]
    to("0008", command.downgrade)
    assert "resent_at" not in {c["name"] for c in inspect(engine).get_columns("batches")}
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM batches WHERE job_id = 'r'")) == 1
    to("head", command.upgrade)


FILTERED_PAGE_INDEXES = {"ix_images_job_id", "ix_images_job_digit_confidence_id",
                         "ix_images_job_digit_id", "ix_images_job_below_confidence_id",
                         "ix_images_job_below_id"}


def test_filtered_page_indexes_migration_keeps_the_rows_and_goes_back(empty_database_url):
    """0010 indexes a job's rows for the digit and threshold filters (and id order) on a
    database with rows, takes the indexes away again, and brings them back."""
    from alembic import command

    url = empty_database_url
    engine = engine_for(url)
    previous = ScriptDirectory.from_config(alembic_config()).get_revision("0010").down_revision
    assert isinstance(previous, str)

    to = migrating(engine)

    def indexes() -> set[str]:
        return {ix["name"] for ix in inspect(engine).get_indexes("images")}

    to(previous, command.upgrade)
    assert not indexes() & FILTERED_PAGE_INDEXES
    with engine.begin() as connection:
        add_job(connection, "f", total_images=2)
        connection.execute(text(
            "INSERT INTO images (job_id, batch, path, status, attempts, digit, confidence,"
            " below_threshold) VALUES ('f', 0, 'a', 'done', 1, 7, 0.25, true),"
            " ('f', 0, 'b', 'pending', 1, NULL, NULL, NULL)"))
    to("0010", command.upgrade)
    assert indexes() >= FILTERED_PAGE_INDEXES
    with engine.connect() as connection:
        assert connection.execute(text(
            "SELECT path FROM images WHERE job_id = 'f' AND digit = 7 ORDER BY id")).all() == [
                ("a",)]
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0010"
    to(previous, command.downgrade)
    assert not indexes() & FILTERED_PAGE_INDEXES
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM images WHERE job_id = 'f'")) == 2
    to("head", command.upgrade)
    assert indexes() >= FILTERED_PAGE_INDEXES


def test_hand_reviews_migration_keeps_the_reviews_and_goes_back(empty_database_url):
    """0012 adds reviews.hand_digits (NULL on every earlier review); down drops it and
    keeps the reviews."""
    from alembic import command

    engine = engine_for(empty_database_url)

    to = migrating(engine)

    to("0011", command.upgrade)
    with engine.begin() as connection:
        add_job(connection, "v", total_images=1)
        connection.execute(text(
            "INSERT INTO images (job_id, batch, path, status, attempts, digit, confidence)"
            " VALUES ('v', 0, 'a', 'done', 1, 3, 0.75)"))
        connection.execute(text(
            "INSERT INTO reviews (image_id, digit, unusable, reviewer, reviewed_at)"
            " SELECT id, 5, false, 'r', CURRENT_TIMESTAMP FROM images WHERE job_id = 'v'"))
    to("0012", command.upgrade)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT digit, hand_digits FROM reviews")).all() == [
            (5, None)]
    to("0011", command.downgrade)
    assert "hand_digits" not in {c["name"] for c in inspect(engine).get_columns("reviews")}
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM reviews")) == 1
    to("head", command.upgrade)


def test_object_etags_migration_keeps_the_rows_and_goes_back(empty_database_url):
    """0014 adds images.etag (NULL on rows written before: folder jobs); down again drops
    it and keeps every image."""
    from alembic import command

    engine = engine_for(empty_database_url)

    to = migrating(engine)

    to("0012", command.upgrade)
    with engine.begin() as connection:
        add_job(connection, "m", total_images=1)
        connection.execute(text(
            "INSERT INTO images (job_id, batch, path, status, attempts, digit)"
            " VALUES ('m', 0, 'a', 'done', 1, 3)"))
    to("0014", command.upgrade)
    assert "etag" in [c["name"] for c in inspect(engine).get_columns("images")]
    with engine.begin() as connection:
        assert connection.execute(text("SELECT digit, etag FROM images")).all() == [(3, None)]
        connection.execute(text(
            "INSERT INTO images (job_id, batch, path, status, attempts, etag)"
            " VALUES ('m', 0, 'b', 'pending', 0, '\"e1\"')"))
    to("0012", command.downgrade)
    assert "etag" not in [c["name"] for c in inspect(engine).get_columns("images")]
    with engine.begin() as connection:
        assert connection.scalar(text("SELECT count(*) FROM images")) == 2


def test_webhook_migration_keeps_the_jobs_and_goes_back(empty_database_url):
    """0015 adds the jobs' webhook columns (NULL on jobs made before: no webhook), keeps
    every job and image, and down again drops only them."""
    from alembic import command

    engine = engine_for(empty_database_url)

    to = migrating(engine)

    to("0014", command.upgrade)
    with engine.begin() as connection:
        add_job(connection, "w", total_images=1)
        connection.execute(text(
            "INSERT INTO images (job_id, batch, path, status, attempts)"
            " VALUES ('w', 0, 'a', 'pending', 0)"))
    to("0015", command.upgrade)
    with engine.connect() as connection:
        assert connection.execute(text(
            "SELECT webhook_url, webhook_state, webhook_attempts FROM jobs WHERE id = 'w'"
        )).all() == [(None, None, None)]
    to("0014", command.downgrade)
    assert not any(c["name"].startswith("webhook_") for c in inspect(engine).get_columns("jobs"))
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM images WHERE job_id = 'w'")) == 1
    to("head", command.upgrade)


def test_job_names_migration_names_the_jobs_after_their_folders_and_goes_back(
        empty_database_url):
    """0016 adds jobs.name, each earlier job named after its folder's last component; down
    drops it and keeps the jobs and their rows."""
    from alembic import command

    engine = engine_for(empty_database_url)

    to = migrating(engine)

    to("0015", command.upgrade)
    with engine.begin() as connection:
        for job_id, root in (("a", "/srv/photos/cyril"), ("b", "/srv/up/7de9/"), ("c", "/")):
            connection.execute(text(
                "INSERT INTO jobs (id, root, threshold, batch_size, total_images,"
                " total_batches, model_version, inline, created_at) VALUES"
                " (:id, :root, 0.5, 2, 1, 1, 'v', false, CURRENT_TIMESTAMP)"),
                {"id": job_id, "root": root})
        connection.execute(text(
            "INSERT INTO images (job_id, batch, path, status, attempts)"
            " VALUES ('a', 0, 'x.jpg', 'pending', 0)"))
    to("0016", command.upgrade)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT id, name FROM jobs ORDER BY id")).all() == [
            ("a", "cyril"), ("b", "7de9"), ("c", "/")]
    to("0015", command.downgrade)
    assert "name" not in {c["name"] for c in inspect(engine).get_columns("jobs")}
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM images")) == 1
    to("head", command.upgrade)


def test_models_migration_adds_the_registry_and_goes_back(empty_database_url):
    """0013 adds the models table (one name each) beside a job's rows; down again drops
    it and keeps every job and image."""
    from alembic import command

    engine = engine_for(empty_database_url)

    to = migrating(engine)

    to("0012", command.upgrade)
    with engine.begin() as connection:
        add_job(connection, "r", total_images=1)
        connection.execute(text(
            "INSERT INTO images (job_id, batch, path, status, attempts, digit, confidence,"
            " model_version) VALUES ('r', 0, 'a', 'done', 1, 3, 0.75, 'v')"))
    to("0013", command.upgrade)
    insert = text("INSERT INTO models (version, name, parent, file, created_at) VALUES"
                  " (:v, :n, 'v', 'x.keras', CURRENT_TIMESTAMP)")
    with engine.begin() as connection:
        connection.execute(insert, {"v": "a1", "n": "first"})
        with pytest.raises(IntegrityError), connection.begin_nested():  # one model a name
            connection.execute(insert, {"v": "b2", "n": "first"})
        assert connection.execute(text("SELECT version, promoted_at FROM models")).all() == [
            ("a1", None)]
    to("0012", command.downgrade)
    assert "models" not in inspect(engine).get_table_names()
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM images WHERE job_id = 'r'")) == 1


def test_deleted_totals_migration_adds_the_table_and_goes_back(empty_database_url):
    """0017 adds deleted_totals (empty: jobs deleted before it were not counted) beside a
    job's rows; down again drops it and keeps every job and image."""
    from alembic import command

    engine = engine_for(empty_database_url)

    to = migrating(engine)

    to("0016", command.upgrade)
    with engine.begin() as connection:
        add_job(connection, "t", total_images=1)
        connection.execute(text(
            "INSERT INTO images (job_id, batch, path, status, attempts)"
            " VALUES ('t', 0, 'a', 'done', 1)"))
    to("0017", command.upgrade)
    with engine.begin() as connection:
        assert connection.scalar(text("SELECT count(*) FROM deleted_totals")) == 0
        connection.execute(text("INSERT INTO deleted_totals (name, total) VALUES ('jobs', 1)"))
        with pytest.raises(IntegrityError), connection.begin_nested():  # one row a name
            connection.execute(text(
                "INSERT INTO deleted_totals (name, total) VALUES ('jobs', 2)"))
    to("0016", command.downgrade)
    assert "deleted_totals" not in inspect(engine).get_table_names()
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM images WHERE job_id = 't'")) == 1
    to("head", command.upgrade)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == SCHEMA_HEAD
