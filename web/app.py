"""The application factory: ``create_app(settings)`` is what uvicorn serves.

Every error a client can cause leaves as a 4xx with one line of JSON ``detail`` (but a
404 asked for by a browser, ``Accept: text/html``, outside ``/api/``: a small page); the
handlers below are the one place where an exception becomes a status: the domain's
refusals (an unknown job, a finished one, a refused upload or folder), validation errors,
a database or broker that is down, and anything unexpected, so no traceback ever
reaches a client.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from kombu.exceptions import OperationalError as BrokerUnavailable
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError as DatabaseUnavailable
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from signdigits.config.settings import Settings
from signdigits.config.webhooks import WebhookRefused
from signdigits.db.jobs import JobFinished, JobNameError, JobNotFound, JobRunning
from signdigits.db.registry import ModelNotFound, RegistryError
from signdigits.db.reviews import NotReviewable
from signdigits.db.webhooks import WebhookUnchanged
from signdigits.producer.scan import FolderError
from signdigits.producer.submit import SubmissionError
from signdigits.serving.artifact import ArtifactError
from signdigits.web.auth import Guard
from signdigits.web.head import HeadAsGet
from signdigits.web.hosts import HostCheck, allowed_hosts
from signdigits.web.limits import BodyCap
from signdigits.web.routes import ROUTERS
from signdigits.web.routes.pages import not_found_page, wants_page
from signdigits.web.state import WebState
from signdigits.web.upload_store import UploadRefused

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent

# The domain's refusals and their statuses; the message is the exception's own line.
REFUSALS: dict[type[Exception], int] = {
    JobNotFound: 404,
    JobFinished: 409,  # cancelling a job that ended
    JobRunning: 409,  # deleting a job that has not ended
    JobNameError: 422,  # a name no job can have
    NotReviewable: 409,  # reviewing an image with no answer to review
    FolderError: 400,  # a submission's folder: missing, empty, outside the allowed roots
    SubmissionError: 503,  # the broker was unreachable before anything was recorded
    WebhookRefused: 400,  # a webhook URL this server will not call
    WebhookUnchanged: 409,  # sending again a job's webhook it has not, stopping a settled one
    ModelNotFound: 404,
    RegistryError: 409,  # no such model, or one the workers could not load: nothing changed
}


def create_app(settings: Settings, *, host: str = "127.0.0.1") -> FastAPI:
    """A ready application on ``settings``' database and broker (migrated beforehand),
    answering to the names a server listening on ``host`` may be reached by."""
    from signdigits.broker.app import create_app as celery_app
    from signdigits.db.session import session_factory

    app = FastAPI(title="signdigits", version="1", docs_url=None, redoc_url=None,
                  description="Submit image folders or uploads, watch jobs, browse results, "
                              "classify one photo.")
    app.state.web = WebState(settings=settings, sessions=session_factory(settings.database_url),
                             celery=celery_app(settings))
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _install_offline_docs(app)
    app.router.on_shutdown.append(lambda: _stop_metrics(app))
    app.add_middleware(BodyCap, limit=settings.max_upload_bytes)
    app.add_middleware(Guard, settings=settings)
    app.add_middleware(HeadAsGet)
    # Outermost: a rebound name gets its 400 before a page, a token or a login prompt.
    app.add_middleware(HostCheck, hosts=allowed_hosts(host, settings.web_hosts))
    _install_error_handlers(app)
    return app


def _stop_metrics(app: FastAPI) -> None:
    """The /metrics task-event listener (started by the first scrape) ends with the app."""
    metrics = getattr(app.state, "metrics", None)
    if metrics is not None:
        metrics.stop()


# Swagger UI 5.17.14 as openapi-ui-bundles 0.3.0 ships it (pyproject.toml pins it): the
# files served are checked against these, so an upgrade is a reviewed change of both.
SWAGGER_UI_FILES = {
    "swagger-ui-bundle.js": "c2e4a9ef08144839ff47c14202063ecfe4e59e70a4e7154a26bd50d880c88ba1",
    "swagger-ui.css": "40170f0ee859d17f92131ba707329a88a070e4f66874d11365e9a77d232f6117",
}


def swagger_ui_problem(folder: Path) -> str | None:
    """None if ``folder`` holds the pinned Swagger UI files; else what differs."""
    import hashlib

    for name, digest in SWAGGER_UI_FILES.items():
        try:
            found = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        except OSError as exc:
            return f"{name}: {exc.strerror or exc}"
        if found != digest:
            return f"{name} is not the pinned file (sha256 {found[:12]}..., expected " \
                   f"{digest[:12]}...): reinstall openapi-ui-bundles==0.3.0"
    return None


def _install_offline_docs(app: FastAPI) -> None:
    """``/docs`` from the openapi-ui-bundles package: FastAPI's own page loads Swagger UI
    from a CDN, which a machine without internet access cannot reach. Swagger UI 5, as
    4 could not read the OpenAPI 3.1 FastAPI writes ("does not specify a valid version
    field")."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from openapi_ui_bundles import swagger_ui

    folder = Path(swagger_ui.static_path)
    problem = swagger_ui_problem(folder)
    if problem is None:
        app.mount("/docs-assets", StaticFiles(directory=folder), name="docs-assets")
    else:
        log.warning("/docs is unavailable: %s", problem)

    @app.get("/docs", include_in_schema=False)
    def docs():
        if problem is not None:
            return _refused(503, f"the API page is unavailable: {problem}")
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="signdigits API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png")


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _refused(status: int, detail: str, headers=None) -> JSONResponse:
    return JSONResponse({"detail": one_line(detail)}, status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> str:
    """The first error as ``field: what is wrong`` (a body's fields without ``body.``)."""
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = str(first["msg"])
    return f"{where}: {message}" if where else message


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404 and wants_page(request):
            return not_found_page(request, one_line(exc.detail))
        return _refused(exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _refused(422, _validation_detail(exc))

    for refusal, status in REFUSALS.items():
        app.add_exception_handler(refusal, _refusal_handler(status))

    @app.exception_handler(UploadRefused)
    async def upload_refused(_request: Request, exc: UploadRefused) -> JSONResponse:
        return _refused(exc.status, str(exc))  # 400, 413 (too big), 415, 503 (our disk)

    @app.exception_handler(ArtifactError)
    async def model_unavailable(_request: Request, exc: ArtifactError) -> JSONResponse:
        return _refused(503, f"model unavailable: {exc}")

    @app.exception_handler(DatabaseUnavailable)
    async def database_down(_request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return JSONResponse({"detail": "database unavailable; try again"}, status_code=503)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(_request: Request, _exc: ClientDisconnect) -> Response:
        # It hung up mid-body: no one reads the answer, and it is not a bug of ours.
        log.debug("client hung up before its request's body was read")
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # A bug of ours, not the client's: logged in full, answered in one line.
        log.exception("unexpected error")
        return JSONResponse({"detail": f"internal error ({exc.__class__.__name__})"},
                            status_code=500)

    async def broker_down(_request: Request, exc: Exception) -> JSONResponse:
        return _refused(503, f"broker unavailable: {exc}")

    app.add_exception_handler(BrokerUnavailable, broker_down)
    app.add_exception_handler(RedisError, broker_down)  # the predictions' replies


def _refusal_handler(status: int):
    async def refused(request: Request, exc: Exception) -> Response:
        if status == 404 and wants_page(request):  # /jobs/nope in a browser: a page
            return not_found_page(request, one_line(str(exc)))
        return _refused(status, str(exc))

    return refused
