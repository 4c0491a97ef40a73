"""Celery worker package: ``celery -A worker worker|inspect|events|flower`` works."""

from worker import readiness  # noqa: F401 - registers `inspect models_loaded` for the CLI too
from worker.app import app

__all__ = ["app"]
