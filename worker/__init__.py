"""Celery worker package: ``celery -A signdigits.worker worker|inspect|events|flower`` works."""

from signdigits.worker import readiness  # noqa: F401 - registers `inspect models_loaded` for the CLI too
from signdigits.worker.app import app

__all__ = ["app"]
