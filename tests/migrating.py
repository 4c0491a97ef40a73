"""Stepping a test database's schema to one revision, up or down (tests/test_migrate*.py)."""

from __future__ import annotations

from sqlalchemy import text

from signdigits.db.migrate import alembic_config


def migrating(engine):
    """``to(revision, command.upgrade | command.downgrade)`` on ``engine``'s database."""

    def to(revision: str, direction) -> None:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            direction(config, revision)

    return to


def add_job(connection, job_id: str, *, total_images: int = 1) -> None:
    """A job row as every revision since 0001 takes it (root "/", one batch)."""
    connection.execute(text(
        "INSERT INTO jobs (id, root, threshold, batch_size, total_images, total_batches,"
        " model_version, inline, created_at) VALUES"
        " (:id, '/', 0.5, 2, :total, 1, 'v', false, CURRENT_TIMESTAMP)"),
        {"id": job_id, "total": total_images})
