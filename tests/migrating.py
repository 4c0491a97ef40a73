"""Stepping a test database's schema to one revision, up or down (tests/test_migrate*.py)."""

from __future__ import annotations

from signdigits.db.migrate import alembic_config


def migrating(engine):
    """``to(revision, command.upgrade | command.downgrade)`` on ``engine``'s database."""

    def to(revision: str, direction) -> None:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            direction(config, revision)

    return to
