"""Celery worker package: ``celery -A worker worker|inspect|events|flower`` works."""

from worker.app import app

__all__ = ["app"]
