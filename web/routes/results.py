"""A job's results: ``results.csv`` and ``results.json`` streamed, and its ``stats``.

The exported rows and cells are :mod:`db.export`'s, as the CLI's are: formula cells
neutralised, CRLF line ends; ``tests/test_web_api.py`` checks both give the same rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from signdigits.db.export import COLUMNS, CSV_LINE_END, csv_row, result_record
from signdigits.db.jobs import resolve_job
from signdigits.db.labels import evaluate
from signdigits.db.models import Job
from signdigits.db.results import confidence_histogram, final_digit_counts, iter_results
from signdigits.web.deps import FoundJob, JobRef, SessionDep, StateDep
from signdigits.web.job_names import download_headers
from signdigits.web.page_schemas import EvaluationOut
from signdigits.web.schemas import JobStats
from signdigits.worker.thresholds import thresholds_by_model

router = APIRouter(prefix="/api/jobs")


def _records(state, job: Job, digit, below_threshold: bool,
             errors: bool) -> Iterator[dict]:
    """The rows, read as the response streams (its own session: the handler's is closed
    by then)."""
    with state.sessions() as session:
        thresholds = thresholds_by_model(state.settings, session, job)
        for image, review in iter_results(session, job_id=job.id, digit=digit,
                                          below_threshold=below_threshold, errors=errors):
            yield result_record(image, review, thresholds)


@router.get("/{job_id}/results.csv", tags=["results"],
            summary="One CSV row per image (as `signdigits results`)")
def results_csv(job_id: JobRef, session: SessionDep, state: StateDep,
                digit: Annotated[int | None, Query(ge=0, le=9)] = None,
                below_threshold: bool = False, errors: bool = False) -> StreamingResponse:
    job = resolve_job(session, ref=job_id)  # 404 before the response starts
    records = _records(state, job, digit, below_threshold, errors)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator=CSV_LINE_END)
        writer.writeheader()
        for row in records:
            writer.writerow(csv_row(row))
            if buffer.tell() > 1 << 16:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(lines(), media_type="text/csv", headers=download_headers(job, "csv"))


@router.get("/{job_id}/results.json", tags=["results"], summary="The same rows as a JSON array")
def results_json(job_id: JobRef, session: SessionDep, state: StateDep,
                 digit: Annotated[int | None, Query(ge=0, le=9)] = None,
                 below_threshold: bool = False, errors: bool = False) -> StreamingResponse:
    job = resolve_job(session, ref=job_id)  # 404 before the response starts
    records = _records(state, job, digit, below_threshold, errors)

    def chunks() -> Iterator[str]:
        yield "["
        for count, row in enumerate(records):
            yield ("," if count else "") + "\n  " + json.dumps(row, ensure_ascii=False)
        yield "\n]\n"

    return StreamingResponse(chunks(), media_type="application/json",
                             headers=download_headers(job, "json"))


@router.get("/{job_id}/stats", response_model=JobStats, tags=["jobs"],
            summary="Images per digit (reviews applied) and a 20-bin histogram of confidences")
def stats(job: FoundJob, session: SessionDep) -> JobStats:
    return job_stats(session, job)


def job_stats(session, job: Job) -> JobStats:
    counts = final_digit_counts(session, job_id=job.id)
    return JobStats(digits=counts.digits, no_hand=counts.no_hand, unusable=counts.unusable,
                    confidence_histogram=confidence_histogram(session, job_id=job.id),
                    threshold=job.threshold)


@router.get("/{job_id}/evaluation", response_model=EvaluationOut, tags=["jobs"],
            summary="The answers checked against the folder labels (folders named 0-9)")
def evaluation(job: FoundJob, session: SessionDep) -> EvaluationOut:
    return EvaluationOut.of(evaluate(session, job=job))
