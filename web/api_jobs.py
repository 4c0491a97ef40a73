"""``/api/jobs``: submit a folder or an upload, list jobs, one job, its images, cancel."""

from __future__ import annotations

import base64
import functools
import json
import logging
import math
import os
import queue
import shutil
import threading
from pathlib import Path
from typing import NoReturn

from fastapi import APIRouter, HTTPException, Query, Request
from kombu.exceptions import OperationalError as BrokerUnavailable
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from signdigits.config.network import is_loopback
from signdigits.db.images import ImageCursor, ImageFilter, images_page
from signdigits.db.jobs import JobFinished, cancel_job, jobs_page
from signdigits.db.models import ImageStatus
from signdigits.db.reviews import current_reviews
from signdigits.files.paths import inside_allowed_roots
from signdigits.web.limits import MAX_ID, json_body
from signdigits.web.state import WebState, image_json, job_json, web_state
from signdigits.web.uploads import Upload, UploadRefused, store_uploads, upload_root

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
_log = logging.getLogger("signdigits.web")

_SUBMIT_DOC = {
    "requestBody": {"content": {
        "application/json": {"schema": {"type": "object", "required": ["folder"], "properties": {
            "folder": {"type": "string"}, "threshold": {"type": "number"},
            "batch_size": {"type": "integer"}}}},
        "multipart/form-data": {"schema": {"type": "object", "required": ["files"], "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "threshold": {"type": "number"}}}},
    }},
}


def number(value, name: str, *, low: float, high: float, integer: bool = False):
    """A client's number checked against its range; 422 with one line otherwise."""
    if value is None or value == "":
        return None
    try:
        parsed = int(value) if integer else float(value)
    except (TypeError, ValueError, OverflowError):  # 1e400 is infinity: int() overflows
        parsed = None
    if integer and isinstance(value, float) and not value.is_integer():
        parsed = None  # 1.7 is no batch size, rather than silently 1
    if parsed is None or isinstance(value, bool) or not low <= parsed <= high:
        kind = "an integer" if integer else "a number"
        raise HTTPException(422, f"{name} must be {kind} between {low:g} and {high:g}")
    return parsed


@router.post("", status_code=201, openapi_extra=_SUBMIT_DOC,
             summary="Submit a server folder (JSON) or uploaded images/zips (multipart)")
async def submit(request: Request) -> dict:
    state = web_state(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        folder, threshold, batch_size = await _stored_upload(request, state)
        job_settings = state.settings.model_copy(
            update={"allowed_roots": [*state.settings.allowed_roots, upload_root(state.settings)]})
        inline = state.settings.upload_inline  # the bytes travel, unless workers see them
    elif kind == "application/json":
        body = await json_body(request)
        if not isinstance(body, dict):
            raise HTTPException(422, 'send a JSON object: {"folder": "/abs/path"}')
        folder = _allowed_folder(request, state, body.get("folder"))
        threshold = number(body.get("threshold"), "threshold", low=0, high=1)
        batch_size = number(body.get("batch_size"), "batch_size", low=1, high=4096, integer=True)
        job_settings, inline = state.settings, None
    else:
        raise HTTPException(415, "send application/json with a folder, or multipart/form-data "
                                 "with files")
    job_id = await run_in_threadpool(_submit, state, folder, job_settings, threshold,
                                     batch_size, inline, kind == "multipart/form-data")
    with state.sessions() as session:
        return job_json(state.summary(session, job_id))


async def _stored_upload(request: Request, state: WebState) -> tuple[Path, float | None, None]:
    form = await request.form(max_files=100_000, max_fields=20)
    try:
        threshold = number(form.get("threshold"), "threshold", low=0, high=1)
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        if not files:
            raise HTTPException(400, "no files uploaded (send one or more 'files' fields)")
        uploads = [Upload(f.filename or "", f.file) for f in files]
        try:
            folder = await run_in_threadpool(store_uploads, uploads, settings=state.settings)
        except UploadRefused as exc:
            raise HTTPException(exc.status, str(exc)) from None
    finally:
        await form.close()
    return folder, threshold, None


def _allowed_folder(request: Request, state: WebState, folder) -> Path:
    if not isinstance(folder, str) or not folder.startswith("/"):
        raise HTTPException(422, 'give "folder" as an absolute path on the server')
    try:
        if b"\x00" in os.fsencode(folder):
            raise ValueError
    except (ValueError, UnicodeEncodeError):  # no file system path holds these
        raise HTTPException(422, '"folder" holds a NUL byte or an unpaired surrogate') from None
    roots = state.settings.allowed_roots
    if roots:
        if not inside_allowed_roots(folder, roots):
            raise HTTPException(403, f"{folder}: outside SIGNDIGITS_ALLOWED_ROOTS")
    elif state.settings.environment != "development" or not is_loopback(
            request.client.host if request.client else ""):
        raise HTTPException(403, "folder jobs over HTTP need SIGNDIGITS_ALLOWED_ROOTS (without "
                                 "it, only in development from this machine)")
    return Path(folder)


def _submit(state: WebState, folder: Path, settings, threshold, batch_size, inline,
            upload: bool) -> str:
    """Start the job; its id once its row exists, or the HTTP error of why it cannot start.

    A folder's walk goes on in a thread after the answer (a million images take minutes
    to walk; the job shows ``submitting`` meanwhile, and a web process stopped mid-walk
    leaves it ``submission interrupted``, which ``signdigits resume`` finishes). An upload
    is walked before the answer: its files are all here already, and the answer then
    counts them.
    """
    from signdigits.producer.submit import submit_folder

    start = functools.partial(submit_folder, folder, settings=settings, sessions=state.sessions,
                              app=state.celery, threshold=threshold, batch_size=batch_size,
                              inline=inline)
    if upload:
        try:
            return start().job_id
        except Exception as exc:  # noqa: BLE001 - mapped to an HTTP answer, or re-raised
            _refuse(exc, folder=folder, upload=upload)
    outcome: queue.SimpleQueue[str | BaseException] = queue.SimpleQueue()
    recorded = threading.Event()

    def on_recorded(job_id: str) -> None:
        recorded.set()
        outcome.put(job_id)

    def walk() -> None:
        try:
            start(on_recorded=on_recorded)
        except BaseException as exc:  # noqa: BLE001 - the request, or the log, reports it
            if not recorded.is_set():
                outcome.put(exc)
            else:  # the job's row says why (submission interrupted); the log says it too
                _log.error("the walk of %s stopped: %s", folder, exc)

    threading.Thread(target=walk, name=f"walk {folder}", daemon=True).start()
    answer = outcome.get()
    if isinstance(answer, BaseException):
        _refuse(answer, folder=folder, upload=upload)
    return answer


def _refuse(exc: BaseException, *, folder: Path, upload: bool) -> NoReturn:
    """Raise the HTTP error for a submission that could not start (or ``exc`` itself)."""
    from signdigits.producer.scan import FolderError
    from signdigits.producer.submit import SubmissionError
    from signdigits.serving.artifact import ArtifactError

    if isinstance(exc, FolderError):
        if upload:
            shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(400, str(exc)) from None
    if isinstance(exc, ArtifactError):
        raise HTTPException(503, f"model unavailable: {exc}") from None
    if isinstance(exc, BrokerUnavailable):
        raise HTTPException(503, f"cannot enqueue on the broker ({exc}); the job is marked "
                                 "failed") from None
    if isinstance(exc, SubmissionError):  # the broker was unreachable before anything began
        raise HTTPException(503, str(exc)) from None
    if isinstance(exc, ValueError):
        raise HTTPException(422, str(exc)) from None
    raise exc


@router.get("", summary="Jobs, newest first")
def list_jobs(request: Request, limit: int = Query(20, ge=1, le=200),
              cursor: str | None = Query(None)) -> dict:
    state = web_state(request)
    # An empty cursor is no cursor: number() gives None for it, and `None + limit` was a 500.
    offset = number(cursor, "cursor", low=0, high=10**12, integer=True) if cursor else 0
    with state.sessions() as session:
        jobs = jobs_page(session, limit=limit, offset=offset)
        items = [job_json(state.summary(session, job.id)) for job in jobs[:limit]]
    return {"items": items, "next_cursor": str(offset + limit) if len(jobs) > limit else None}


@router.get("/{job_id}", summary="One job: counts, state, rate")
def get_job(request: Request, job_id: str) -> dict:
    state = web_state(request)
    with state.sessions() as session:
        return job_json(state.summary(session, job_id))


@router.get("/{job_id}/images", summary="The job's images, keyset-paginated")
def list_images(
    request: Request, job_id: str,
    digit: int | None = Query(None, ge=0, le=9),
    below_threshold: bool | None = Query(None),
    status: ImageStatus | None = Query(None),
    order: str = Query("id", pattern="^(id|confidence)$"),
    limit: int = Query(100, ge=1, le=500),
    cursor: str | None = Query(None),
) -> dict:
    state = web_state(request)
    where = ImageFilter(digit, below_threshold, status.value if status else None)
    with state.sessions() as session:
        job = state.job(session, job_id)
        rows, following = images_page(session, job_id=job.id, where=where, order=order,
                                      limit=limit, cursor=decode_cursor(cursor))
        reviews = current_reviews(session, image_ids=[r.id for r in rows])
        return {"items": [image_json(r, reviews.get(r.id)) for r in rows],
                "next_cursor": encode_cursor(following)}


def encode_cursor(cursor: ImageCursor | None) -> str | None:
    if cursor is None:
        return None
    raw = json.dumps([cursor.last_id, cursor.confidence, cursor.unscored]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str | None) -> ImageCursor | None:
    if not text:
        return None
    try:
        last_id, confidence, unscored = json.loads(
            base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        cursor = ImageCursor(int(last_id), None if confidence is None else float(confidence),
                             bool(unscored))
        if not 0 <= cursor.last_id <= MAX_ID or (
                cursor.confidence is not None and not math.isfinite(cursor.confidence)):
            raise ValueError
    except (ValueError, TypeError, OverflowError, RecursionError):  # [[[[... nests deep
        raise HTTPException(400, "cursor is not one this API returned") from None
    return cursor


@router.post("/{job_id}/cancel", summary="Skip the job's images not yet started")
def cancel(request: Request, job_id: str) -> dict:
    state = web_state(request)
    try:
        with state.sessions.begin() as session:
            found = state.job(session, job_id)
            cancel_job(session, job_id=found.id)
    except JobFinished as exc:
        raise HTTPException(409, str(exc)) from None
    with state.sessions() as session:
        return job_json(state.summary(session, found.id))
