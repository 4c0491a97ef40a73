"""``results.csv`` and ``results.json``: the rows ``signdigits results`` writes, streamed.

The rows and cells are :mod:`db.export`'s, as the CLI's are: formula cells neutralised,
CRLF line ends; ``tests/test_web_api.py`` checks both give the same rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from signdigits.db.export import COLUMNS, CSV_LINE_END, csv_row, result_record
from signdigits.db.results import iter_results
from signdigits.web.state import web_state

router = APIRouter(prefix="/api/jobs", tags=["results"])

def _records(request: Request, job_id: str, digit, below_threshold: bool,
             errors: bool) -> tuple[str, Iterator[dict]]:
    state = web_state(request)
    with state.sessions() as session:
        found = state.job(session, job_id).id  # 404 before the response starts

    def rows() -> Iterator[dict]:
        with state.sessions() as session:
            for image, review in iter_results(session, job_id=found, digit=digit,
                                              below_threshold=below_threshold, errors=errors):
                yield result_record(image, review)

    return found, rows()


@router.get("/{job_id}/results.csv", summary="One CSV row per image (as `signdigits results`)")
def results_csv(request: Request, job_id: str, digit: int | None = Query(None, ge=0, le=9),
                below_threshold: bool = False, errors: bool = False) -> StreamingResponse:
    found, records = _records(request, job_id, digit, below_threshold, errors)

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

    return StreamingResponse(lines(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{found}.csv"'})


@router.get("/{job_id}/results.json", summary="The same rows as a JSON array")
def results_json(request: Request, job_id: str, digit: int | None = Query(None, ge=0, le=9),
                 below_threshold: bool = False, errors: bool = False) -> StreamingResponse:
    _, records = _records(request, job_id, digit, below_threshold, errors)

    def chunks() -> Iterator[str]:
        yield "["
        for count, row in enumerate(records):
            yield ("," if count else "") + "\n  " + json.dumps(row, ensure_ascii=False)
        yield "\n]\n"

    return StreamingResponse(chunks(), media_type="application/json")
