"""Apply Alembic migrations; safe to call from several processes starting at once."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from signdigits.db.models import Base
from signdigits.db.session import engine_for
from signdigits.files.paths import real_path

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision under migrations/versions; tests/test_migrate.py fails if it is not.
SCHEMA_HEAD = "0017"
_PG_LOCK_KEY = 0x5167D161  # any constant shared by all signdigits processes


class SchemaRefused(Exception):
    """A database this signdigits must not migrate: a newer one's, or another program's."""


def known_revisions() -> set[str]:
    return {path.name.partition("_")[0] for path in (MIGRATIONS / "versions").glob("*.py")}


def alembic_config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(url: str) -> None:
    """``alembic upgrade head`` on ``url``, serialised against concurrent callers.

    A database already at :data:`SCHEMA_HEAD` costs one query and no Alembic import:
    every ``submit`` calls this, and Alembic's start-up would delay the job's first batch.
    """
    if _at_head(url):
        return
    from alembic import command

    engine = engine_for(url)
    with _migration_lock(url), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        # Under the lock: another process's migration, half done, is not seen as foreign.
        _refuse_what_is_not_ours(connection)
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _at_head(url: str) -> bool:
    try:
        with engine_for(url).connect() as connection:
            return connection.scalar(text("SELECT version_num FROM alembic_version")) == SCHEMA_HEAD
    except DBAPIError:
        return False  # no alembic_version table yet (or unreachable: upgrade says which)


def newer_schema(revision: str | None) -> str | None:
    """Why a database at ``revision`` is not ours to touch, if a newer signdigits made it."""
    if revision is None or revision in known_revisions():
        return None
    # Alembic's own words would be "Can't locate revision".
    return (f"is at schema {revision}, newer than this signdigits' {SCHEMA_HEAD}: "
            "upgrade signdigits to use it")


def _refuse_what_is_not_ours(connection: Connection) -> None:
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" in tables:
        revision = connection.scalar(text("SELECT version_num FROM alembic_version"))
        if problem := newer_schema(revision):
            raise SchemaRefused(problem)
    elif connection.dialect.name == "sqlite" and not tables <= set(Base.metadata.tables):
        # A SQLite file is one program's: ours added to it would be hard to take out again.
        # (Only our own tables, without alembic_version, is a first migration cut short.)
        others = sorted(tables)
        raise SchemaRefused(f"holds another program's tables ({', '.join(others[:3])}"
                            f"{', ...' if len(others) > 3 else ''}): point "
                            "SIGNDIGITS_DATABASE_URL at a new file")


def schema_revision(url: str) -> str | None:
    """The database's Alembic revision; None if it has no signdigits tables. Changes nothing.

    Raises SQLAlchemy's ``OperationalError`` if the database cannot be reached.
    """
    with engine_for(url).connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.scalar(text("SELECT version_num FROM alembic_version"))


@contextmanager
def _migration_lock(url: str):
    database = make_url(url).database if url.startswith("sqlite") else None
    if not database or database == ":memory:":
        yield
        return
    path = real_path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.migrate-lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
