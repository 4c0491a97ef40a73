"""What handlers are given: settings, a database session, the Celery and Redis clients, the
user, the job a path names; and a body read by hand, validated by its model.

Each is an ``Annotated`` dependency (``session: SessionDep`` in a handler's signature
is enough); the application's :class:`~signdigits.web.state.WebState` is built once by
:func:`web.app.create_app` and reached only through these.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, TypeVar

import redis.asyncio
from celery import Celery
from fastapi import Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from signdigits.config.settings import Settings
from signdigits.db.jobs import resolve_job
from signdigits.db.models import Job
from signdigits.db.progress import JobSummary, summarize_job
from signdigits.web.auth import request_user
from signdigits.web.schemas import JobOut
from signdigits.web.state import WebState
from signdigits.worker.thresholds import models_that_read

Model = TypeVar("Model", bound=BaseModel)


def get_state(request: Request) -> WebState:
    return request.app.state.web


StateDep = Annotated[WebState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(state: StateDep) -> Iterator[Session]:
    """A session for the handler, closed when it returns (before the response is sent:
    a stream's session must not stay open as long as the stream)."""
    with state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_celery(state: StateDep) -> Celery:
    return state.celery


CeleryDep = Annotated[Celery, Depends(get_celery)]


def get_replies(state: StateDep) -> redis.asyncio.Redis:
    return state.replies


RepliesDep = Annotated[redis.asyncio.Redis, Depends(get_replies)]
UserDep = Annotated[str, Depends(request_user)]

JobRef = Annotated[str, Path(description="a job id, a unique prefix of one, or `latest`")]


def get_job(job_id: JobRef, session: SessionDep) -> Job:
    """The job's row (404 for an unknown id, by the application's handler).

    Use this, not :func:`get_summary`, where the counts are not shown: a summary counts
    every row of the job, which for 100,000 rows cost 150 ms of each image page. Only on
    routes without query or body parameters: a dependency runs before those are
    validated, and an unknown job's 404 would take the place of their 422. Those routes
    call :func:`db.jobs.resolve_job` themselves.
    """
    return resolve_job(session, ref=job_id)


FoundJob = Annotated[Job, Depends(get_job)]


def summary_of(session: Session, job: Job, settings: Settings) -> JobSummary:
    """The job's summary: counts every row of the job."""
    return summarize_job(session, job=job, stall_seconds=settings.stall_seconds)


def get_summary(job: FoundJob, session: SessionDep, settings: SettingsDep) -> JobSummary:
    return summary_of(session, job, settings)


FoundSummary = Annotated[JobSummary, Depends(get_summary)]


def described(session: Session, summary: JobSummary, settings: Settings) -> JobOut:
    """One job as its own answer and pages show it: its counts and the models that read
    it (more than one when a model was promoted while it ran). Reads the job's rows once
    more: lists and events, sent often, leave ``models`` out."""
    reads = models_that_read(settings, session, [summary.job])
    return JobOut.of(summary, models=reads[summary.job.id])


def get_described(summary: FoundSummary, session: SessionDep, settings: SettingsDep) -> JobOut:
    return described(session, summary, settings)


DescribedJob = Annotated[JobOut, Depends(get_described)]


def validated(model: type[Model], data: Any) -> Model:
    """``data`` (a body read by hand) as ``model``, or the 422 FastAPI gives a body param."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])}
             for error in exc.errors(include_url=False, include_context=False)]) from None

