"""Celery worker package: ``celery -A signdigits.worker worker|inspect|events|flower`` works.

The Celery app is built when first asked for (Celery's ``-A`` looks up ``app`` here), not
when any module of the package is imported: the CLI and the web import
``worker.thresholds``, and building the app reads the settings, so a bad setting had
become a traceback in ``signdigits status`` instead of its one line.
"""

from typing import Any

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from signdigits.worker import readiness  # noqa: F401 - registers `inspect models_loaded`
        from signdigits.worker.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
