"""Schema migrations: the fast "already at head" path must agree with Alembic."""

from __future__ import annotations

import uuid

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from signdigits.db.migrate import SCHEMA_HEAD, alembic_config, upgrade
from signdigits.db.models import Job
from signdigits.db.session import engine_for, session_factory
from tests.migrating import migrating


def test_schema_head_names_the_newest_migration():
    # A new migration without SCHEMA_HEAD moved forward would never be applied by submit.
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD


def test_upgrade_creates_the_schema_then_leaves_it_alone(database_url):
    upgrade(database_url)
    engine = engine_for(database_url)
    assert {"jobs", "images", "alembic_version"} <= set(inspect(engine).get_table_names())
    sessions = session_factory(database_url)
    job_id = uuid.uuid4().hex  # the PostgreSQL schema is shared with other tests' jobs
    with sessions.begin() as session:
        session.add(Job(id=job_id, root="/", threshold=0.5, batch_size=1, total_images=0,
                        total_batches=0, model_version="v"))
    upgrade(database_url)  # at head: a no-op that must keep the data
    with sessions() as session:
        assert session.get(Job, job_id) is not None
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == SCHEMA_HEAD


def test_upgrade_from_0001_keeps_the_attempts_of_jobs_in_flight(empty_database_url):
    from alembic import command

    from signdigits.db.batches import batch_attempts
    from signdigits.db.progress import summarize_job

    url = empty_database_url
    with engine_for(url).begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(text(
            "INSERT INTO jobs (id, root, threshold, batch_size, total_images, total_batches,"
            " model_version, inline, created_at) VALUES"
            " ('j', '/', 0.5, 2, 4, 2, 'v', false, CURRENT_TIMESTAMP)"
        ))
        connection.execute(text(
            "INSERT INTO images (job_id, batch, path, status, attempts) VALUES"
            " ('j', 0, 'a', 'done', 1), ('j', 0, 'b', 'done', 1),"
            " ('j', 1, 'c', 'pending', 2), ('j', 1, 'd', 'pending', 2)"
        ))
    upgrade(url)
    with session_factory(url)() as session:
        assert batch_attempts(session, job_id="j", batch=0) == 1
        assert batch_attempts(session, job_id="j", batch=1) == 2  # a third try gives up at 3
        # 0006 counted the rows already there, for the summary that reads only batches
        summary = summarize_job(session, job=session.get(Job, "j"), stall_seconds=60)
        assert (summary.total, summary.done, summary.pending, summary.state) == (
            4, 2, 2, "running")
    indexes = {ix["name"] for ix in inspect(engine_for(url)).get_indexes("images")}
    assert "ix_images_job_status_batch" in indexes
    assert not indexes & {"ix_images_job_batch", "ix_images_job_status"}


def test_migrations_build_exactly_the_schema_the_models_declare(empty_database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from signdigits.db.models import Base

    upgrade(empty_database_url)
    with engine_for(empty_database_url).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_reviews_migration_up_down_up(empty_database_url):
    """0005 adds ``reviews`` (with its index) and takes it away again, keeping the rest."""
    from alembic import command

    url = empty_database_url
    upgrade(url)
    engine = engine_for(url)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO jobs (id, root, threshold, batch_size, total_images, total_batches,"
            " model_version, inline, created_at) VALUES"
            " ('r', '/', 0.5, 1, 1, 1, 'v', false, CURRENT_TIMESTAMP)"))
        connection.execute(text(
            "INSERT INTO images (job_id, batch, path, status, attempts, digit)"
            " VALUES ('r', 0, 'a', 'done', 1, 3)"))
        image_id = connection.scalar(text("SELECT id FROM images WHERE job_id = 'r'"))
        connection.execute(text(
            "INSERT INTO reviews (image_id, digit, unusable, reviewer, reviewed_at)"
            " VALUES (:i, 7, false, 'ann', CURRENT_TIMESTAMP)"), {"i": image_id})
    assert "ix_reviews_image_id" in {ix["name"] for ix in inspect(engine).get_indexes("reviews")}

    to = migrating(engine)

    columns = {c["name"] for c in inspect(engine).get_columns("jobs")}
    assert "threshold_from_model" in columns  # 0007; an earlier job reads False
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT threshold_from_model FROM jobs")) in (False, 0)
    to("0004", command.downgrade)
    assert "reviews" not in inspect(engine).get_table_names()
    assert "threshold_from_model" not in {c["name"] for c in inspect(engine).get_columns("jobs")}
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT digit FROM images WHERE job_id = 'r'")) == 3
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0004"
    to("head", command.upgrade)
    assert "reviews" in inspect(engine).get_table_names()
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM reviews")) == 0
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == SCHEMA_HEAD


def test_a_database_a_newer_signdigits_migrated_is_refused_in_one_line(empty_database_url,
                                                                       tmp_path):
    """Alembic's 'Can't locate revision' had come out as a traceback of `db upgrade`."""
    from tests.conftest import make_env, run_cli
    from tests.test_cli_errors import one_line_error

    upgrade(empty_database_url)
    with engine_for(empty_database_url).begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    env = make_env(database_url=empty_database_url)
    for command in (["db", "upgrade"], ["status"]):
        one_line_error(run_cli(*command, env=env, cwd=tmp_path), 1,
                       "at schema 0999, newer than this signdigits' " + SCHEMA_HEAD)
    with engine_for(empty_database_url).connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0999"


def test_a_sqlite_file_of_another_program_is_left_as_it_was(tmp_path):
    """Pointed by mistake at another program's file, `run` had added our tables to it."""
    from tests.conftest import make_env, run_cli
    from tests.test_cli_errors import one_line_error

    url = f"sqlite:///{tmp_path / 'theirs.db'}"
    with engine_for(url).begin() as connection:
        connection.execute(text("CREATE TABLE invoices (id INTEGER)"))
        connection.execute(text("CREATE TABLE images (id INTEGER)"))  # a name like ours
    env = make_env(database_url=url)
    for command in (["db", "upgrade"], ["run", str(tmp_path)]):
        one_line_error(run_cli(*command, env=env, cwd=tmp_path), 1,
                       "holds another program's tables (images, invoices)")
    assert sorted(inspect(engine_for(url)).get_table_names()) == ["images", "invoices"]
