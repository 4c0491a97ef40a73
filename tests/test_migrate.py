"""Schema migrations: the fast "already at head" path must agree with Alembic."""

from __future__ import annotations

import uuid

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from db.migrate import SCHEMA_HEAD, alembic_config, upgrade
from db.models import Job
from db.session import engine_for, session_factory


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
