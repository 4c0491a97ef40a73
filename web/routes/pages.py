"""The HTML pages: ``/`` (jobs and a submit form), ``/jobs/{id}``, its review, ``/try``,
``/models`` (the registry: promote, roll back) and ``/models/{version}`` (a comparison).

Rendered from Jinja2 templates; everything live (progress, the grid, predictions) is
plain JavaScript in ``static/`` calling the same HTTP API other programs use. Each page
sets the CSRF cookie and carries its token for the script's posts.
"""

from __future__ import annotations

from pathlib import Path as FilePath

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from signdigits.files.paths import IMAGE_EXTENSIONS
from signdigits.web.auth import CSRF_COOKIE, new_csrf_token
from signdigits.web.deps import DescribedJob, SessionDep, SettingsDep

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=FilePath(__file__).resolve().parents[1] / "templates")


def _page(request: Request, name: str, *, status: int = 200, **context) -> HTMLResponse:
    token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
    response = templates.TemplateResponse(request, name, {"csrf_token": token, **context},
                                          status_code=status)
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")
    return response


# Paths whose 404 stays JSON whatever the client accepts: the API and what programs read.
_NOT_PAGES = ("/api/", "/static/", "/docs-assets/")
_PROGRAMS = ("/metrics", "/healthz", "/openapi.json", "/favicon.ico")


def wants_page(request: Request) -> bool:
    """A browser asking for a page (``Accept: text/html``), not a program asking the API."""
    path = request.url.path
    return ("text/html" in request.headers.get("accept", "")
            and not path.startswith(_NOT_PAGES) and path not in _PROGRAMS)


def not_found_page(request: Request, detail: str) -> HTMLResponse:
    """A 404 for a person: what was not found, in the site's layout, with a way back."""
    path = request.url.path
    if detail == "Not Found":  # no route: Starlette's own words
        detail = f"there is no page at {path}"
    back = ("/models", "all models") if path.startswith("/models") else ("/", "all jobs")
    return _page(request, "not_found.html", status=404, detail=detail, back=back)


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    # The form leaves out of a folder what the walk would not read: the same list.
    return _page(request, "index.html", image_extensions=" ".join(sorted(IMAGE_EXTENSIONS)))


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job: DescribedJob, settings: SettingsDep) -> HTMLResponse:
    return _page(request, "job.html", job=job.model_dump(mode="json"),
                 flower_url=settings.flower_url)


@router.get("/jobs/{job_id}/review", response_class=HTMLResponse)
def review_page(request: Request, job: DescribedJob) -> HTMLResponse:
    return _page(request, "review.html", job=job.model_dump(mode="json"))


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    from signdigits.web.routes.models import model_list

    return _page(request, "models.html", models=model_list(session, settings))


@router.get("/models/{model}", response_class=HTMLResponse)
def model_page(request: Request, session: SessionDep, settings: SettingsDep,
               model: str = Path(max_length=255)) -> HTMLResponse:
    from signdigits.web.routes.models import one

    return _page(request, "model.html", model=one(session, settings, model))


@router.get("/try", response_class=HTMLResponse)
def try_page(request: Request) -> HTMLResponse:
    return _page(request, "try.html")
