"""Engines and sessions, created by the process that uses them (never at import time)."""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from signdigits.config.settings import masked_password


def make_engine(url: str, *, autocommit: bool = False) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})
        event.listen(engine, "do_connect", _private_file(sqlite_file(url)))
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    options = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    # Without a timeout, connecting to a host that drops packets hangs for minutes (TCP's
    # own), longer than Celery waits for a starting pool process. The URL can override it.
    connect_args = {} if "connect_timeout" in url else {"connect_timeout": 10}
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                         connect_args=connect_args, **options)


def _private_file(path: Path | None):
    """Before SQLite's first connection creates the file, create it 0600 ourselves.

    SQLite makes it with the umask's 0644: every local user could read every job's paths
    and answers. Its -wal and -shm files take the database file's mode.
    """

    def create(_dialect, _record, _args, _kwargs) -> None:
        if path is not None and not path.exists() and path.parent.is_dir():
            # FileExistsError: another process made it meanwhile, and theirs stands.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    return create


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers (status, results) run while workers write; the busy timeout makes
    # concurrent writers from several worker processes wait for the lock instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@lru_cache(maxsize=4)
def engine_for(url: str, *, autocommit: bool = False) -> Engine:
    """One engine per URL (and commit mode) per process; call after any fork."""
    return make_engine(url, autocommit=autocommit)


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


def worker_session_factory(url: str) -> sessionmaker[Session]:
    """Sessions for a worker's claims and stores: on PostgreSQL, each statement commits.

    Every write a worker makes is a single statement guarded by ``status = 'pending'``, so
    a transaction around it adds only BEGIN and COMMIT: 4 of a batch's 10 round trips to
    a server that shares the workers' cores. SQLite keeps its transactions, since there a
    commit, not a round trip, is what costs, and a batch's 128 updates share one.
    """
    return sessionmaker(engine_for(url, autocommit=True), expire_on_commit=False)


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names, made absolute; None for any other database.

    Connecting to a SQLite file that does not exist creates it, so a command that only
    reads asks this first.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database).expanduser().absolute()


def shown_url(url: str) -> str:
    """A database URL fit for a terminal or a log: the password masked."""
    return masked_password(make_url(url).render_as_string(hide_password=True))
