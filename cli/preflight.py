"""What every command checks before it starts, and the one line it prints when it cannot.

Every bad setting, path or server ends in ``error: ...`` naming the variable or path,
the value and what was expected, with exit code 2 for a value that can never work and 1
for a request that failed; never in a traceback.
"""

from __future__ import annotations

import sys

import typer

from signdigits.cli.console import USAGE, fail


class OneLineErrors(typer.Typer):
    """The CLI, with a server or file that fails mid-command reported in one line, exit 1.

    Commands check what they can before they start; this is for what only shows up
    while they run (a database that is read-only, a broker that went away).
    """

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            # Looked up, not imported: a command that never loaded SQLAlchemy or kombu can
            # raise neither's errors, and importing them cost every command (even --help)
            # ~0.3 s.
            database = getattr(sys.modules.get("sqlalchemy.exc"), "DBAPIError", None)
            broker = getattr(sys.modules.get("kombu.exceptions"), "OperationalError", None)
            if database is not None and isinstance(exc, database):
                _report(f"database {_configured_database()}: {_first_line(exc.orig)}")
            elif broker is not None and isinstance(exc, broker):
                _report(f"broker: {_first_line(exc)}")
            elif isinstance(exc, OSError):
                where = f"{exc.filename}: " if exc.filename else ""
                _report(f"{where}{exc.strerror or _first_line(exc)}")
            raise


def _report(message: str):
    try:
        fail(message)
    except typer.Exit as done:
        sys.exit(done.exit_code)


def _first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else error.__class__.__name__


def _configured_database() -> str:
    from signdigits.config.settings import get_settings
    from signdigits.db.session import shown_url, sqlite_file

    url = get_settings().database_url
    return str(sqlite_file(url) or shown_url(url))


def settings_or_fail():
    from signdigits.config.settings import SettingsInvalid, get_settings

    try:
        return get_settings()
    except SettingsInvalid as exc:
        fail(str(exc), code=USAGE)


def require_broker(settings, hint: str = "") -> None:
    if not settings.broker_url:
        fail("SIGNDIGITS_BROKER_URL is not set: expected a Redis URL such as "
             "redis://:password@host:6379/0" + hint, code=USAGE)


def database_for_writing(settings):
    """Create or migrate the database, then hand out sessions: for commands that write."""
    from sqlalchemy.exc import DBAPIError

    from signdigits.db.migrate import SchemaRefused, upgrade
    from signdigits.db.session import session_factory, shown_url, sqlite_file

    url = settings.database_url
    where = sqlite_file(url) or shown_url(url)
    try:
        upgrade(url)
    except SchemaRefused as exc:
        fail(f"database {where} (SIGNDIGITS_DATABASE_URL) {exc}")
    except DBAPIError as exc:
        fail(f"database {where} (SIGNDIGITS_DATABASE_URL): {_first_line(exc.orig)}")
    except OSError as exc:
        fail(f"database {where} (SIGNDIGITS_DATABASE_URL): cannot create it "
             f"({exc.strerror}: {exc.filename})")
    return session_factory(url)


def database_for_reading(settings):
    """Sessions on a database that already holds jobs: never created, never migrated.

    ``status``, ``results``, ``resume``, ``cancel`` and ``models`` pointed at the wrong
    place would otherwise leave an empty database (and its folders) there, and report "no
    jobs" (or "nothing is promoted").
    """
    from sqlalchemy.exc import DBAPIError

    from signdigits.db.migrate import SCHEMA_HEAD, newer_schema, schema_revision
    from signdigits.db.session import session_factory, shown_url, sqlite_file

    url = settings.database_url
    path = sqlite_file(url)
    where = f"{path or shown_url(url)} (SIGNDIGITS_DATABASE_URL)"
    if path is not None and not path.is_file():
        fail(f"no database at {where}: nothing was submitted there")
    try:
        revision = schema_revision(url)
    except DBAPIError as exc:
        fail(f"database {where}: {_first_line(exc.orig)}")
    if revision is None:
        fail(f"database {where} holds no signdigits tables: nothing was submitted there")
    if problem := newer_schema(revision):
        fail(f"database {where} {problem}")
    if revision != SCHEMA_HEAD:
        fail(f"database {where} is at schema {revision}, this signdigits needs "
             f"{SCHEMA_HEAD}: run `signdigits db upgrade`")
    return session_factory(url)


def broker_silence(settings, *, timeout: float = 5.0) -> str | None:
    """Why the broker does not answer (the producer's own check), or None when it does;
    without the producer's "nothing was recorded", for commands that record nothing."""
    from signdigits.broker.app import create_app
    from signdigits.producer.submit import SubmissionError
    from signdigits.producer.submit import check_broker as broker_answers

    try:
        broker_answers(create_app(settings), timeout=timeout)
    except SubmissionError as exc:
        return str(exc).removesuffix("; nothing was recorded")
    return None


def check_broker(settings, *, timeout: float = 5.0, writes: bool = True) -> None:
    """One line and exit 1 unless the broker answers; a command that ``writes`` says that
    nothing was recorded."""
    silence = broker_silence(settings, timeout=timeout)
    if silence is not None:
        fail(f"{silence}; nothing was recorded" if writes else silence)


def job_or_fail(sessions, ref: str):
    """The job ``ref`` names (an id, a unique prefix of one, or ``latest``); one line and
    exit 1 when there is none."""
    from signdigits.db.jobs import JobNotFound, resolve_job

    with sessions() as session:
        try:
            return resolve_job(session, ref=ref)
        except JobNotFound as exc:
            fail(str(exc))
