"""``signdigits db``: database maintenance."""

from __future__ import annotations

from signdigits.cli.console import console
from signdigits.cli.preflight import database_for_writing, settings_or_fail


def db_upgrade() -> None:
    """Apply Alembic migrations (alembic upgrade head)."""
    from signdigits.db.session import shown_url

    settings = settings_or_fail()
    database_for_writing(settings)
    console.print(f"database {shown_url(settings.database_url)} is at the latest schema")
