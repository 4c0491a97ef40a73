"""What every request handler shares: settings, database sessions, the Celery client.

Built once per application by :func:`web.app.create_app`; handlers reach it as
``request.app.state.web``. Also the JSON shape of a job, which the API, the events and
the pages all show.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from celery import Celery
from fastapi import HTTPException, Request
from sqlalchemy.orm import Session, sessionmaker

from signdigits.config.settings import Settings
from signdigits.db.export import final_digit, reviewed_digit
from signdigits.db.jobs import JobNotFound, resolve_job
from signdigits.db.models import Image, Job, as_utc
from signdigits.db.progress import JobSummary, summarize_job


@dataclass
class WebState:
    settings: Settings
    sessions: sessionmaker[Session]
    celery: Celery

    @cached_property
    def replies(self):
        """A Redis client on the broker, where workers push predictions' answers."""
        import redis

        # A read must outlast the longest BLPOP (redis-py's default gives up after 5 s).
        return redis.Redis.from_url(self.settings.broker_url or "redis://127.0.0.1:6379/0",
                                    socket_timeout=self.settings.predict_timeout + 10,
                                    socket_connect_timeout=5)

    def job(self, session: Session, job_id: str) -> Job:
        """The job's row; 404 for an unknown id (prefixes and ``latest`` work too).

        Use this, not :meth:`summary`, where the counts are not shown: a summary counts
        every row of the job, which for 100,000 rows cost 150 ms of each image page.
        """
        try:
            return resolve_job(session, ref=job_id)
        except JobNotFound as exc:
            raise HTTPException(404, str(exc)) from None

    def summary(self, session: Session, job_id: str) -> JobSummary:
        """The job's summary (counts every row of the job); 404 for an unknown id."""
        return summarize_job(session, job=self.job(session, job_id),
                             stall_seconds=self.settings.stall_seconds)


def web_state(request: Request) -> WebState:
    return request.app.state.web


def job_json(summary: JobSummary) -> dict:
    job = summary.job
    return {
        "id": job.id,
        "state": str(summary.state),
        "total_images": summary.total,
        "done": summary.done,
        "errors": summary.errors,
        "below_threshold": summary.below_threshold,
        "cancelled": summary.cancelled,
        "pending": summary.pending,
        "threshold": job.threshold,
        # True: each worker flagged by its own model's default, which is `threshold` only
        # where that model is `model_version` (every image row names its model).
        "threshold_from_model": job.threshold_from_model,
        "model_version": job.model_version,
        "created_at": as_utc(job.created_at).isoformat(),
        "images_per_second": round(summary.rate, 2) if summary.rate else None,
        "stalled": summary.stalled,
        "failure": job.failure,
        "folder": job.root,
    }


def image_json(image: Image, review=None) -> dict:
    return {
        "id": image.id,
        "path": image.path,
        "status": image.status,
        "digit": image.digit,
        "confidence": image.confidence,
        "below_threshold": image.below_threshold,
        "error": image.error,
        "probabilities": image.probabilities,
        "reviewed_digit": reviewed_digit(review),
        "final_digit": final_digit(image, review),
    }
