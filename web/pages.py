"""The HTML pages: ``/`` (jobs and a submit form), ``/jobs/{id}``, its review, ``/try``.

Rendered from Jinja2 templates; everything live (progress, the grid, predictions) is
plain JavaScript in ``static/`` calling the same HTTP API other programs use. Each page
sets the CSRF cookie and carries its token for the script's posts.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from signdigits.db.results import confidence_histogram, digit_counts
from signdigits.web.auth import CSRF_COOKIE, new_csrf_token
from signdigits.web.state import job_json, web_state

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")


def _page(request: Request, name: str, **context) -> HTMLResponse:
    token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
    response = templates.TemplateResponse(request, name, {"csrf_token": token, **context})
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")
    return response


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    return _page(request, "index.html")


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str) -> HTMLResponse:
    state = web_state(request)
    with state.sessions() as session:
        job = job_json(state.summary(session, job_id))
    return _page(request, "job.html", job=job, flower_url=state.settings.flower_url)


@router.get("/jobs/{job_id}/review", response_class=HTMLResponse)
def review_page(request: Request, job_id: str) -> HTMLResponse:
    state = web_state(request)
    with state.sessions() as session:
        job = job_json(state.summary(session, job_id))
    return _page(request, "review.html", job=job)


@router.get("/healthz")
def healthz() -> dict:
    """Answers without credentials (a container health check has none); tells nothing."""
    return {"ok": True}


@router.get("/try", response_class=HTMLResponse)
def try_page(request: Request) -> HTMLResponse:
    return _page(request, "try.html")


@router.get("/api/jobs/{job_id}/stats", include_in_schema=True, tags=["jobs"],
            summary="Images per digit and a 20-bin histogram of confidences")
def stats(request: Request, job_id: str) -> dict:
    state = web_state(request)
    with state.sessions() as session:
        job = state.job(session, job_id)
        digits = digit_counts(session, job_id=job.id)
        histogram = confidence_histogram(session, job_id=job.id)
    return {"digits": [digits.get(d, 0) for d in range(10)],
            "confidence_histogram": histogram, "threshold": job.threshold}
