"""``/api/jobs``: submit a folder or an upload, list jobs, one job, rename, cancel or
delete one, send its webhook again or stop it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from signdigits.config.network import is_loopback
from signdigits.config.settings import Settings
from signdigits.db.jobs import jobs_page, rename_job, resolve_job
from signdigits.db.reviews import reviewed_counts
from signdigits.db.webhooks import stop_webhook
from signdigits.files.objects import objects_allowed, parse_object_url
from signdigits.files.paths import inside_allowed_roots, is_object_url
from signdigits.producer.background import submit_in_background
from signdigits.producer.cancel import CANCEL_WAIT_SECONDS, POLL_SECONDS, cancel_now, walk_over
from signdigits.producer.webhooks import send_if_ended, send_webhook_again
from signdigits.web.deleting import delete_job_everywhere
from signdigits.web.deps import (
    DescribedJob,
    FoundJob,
    JobRef,
    SessionDep,
    SettingsDep,
    StateDep,
    described,
    summary_of,
    validated,
)
from signdigits.web.fields import Offset, request_body
from signdigits.web.job_names import JobRename, upload_name
from signdigits.web.limits import json_body
from signdigits.web.schemas import (
    JobDeleted,
    JobOut,
    JobPage,
    JobSubmitted,
    SubmitFolder,
    SubmitUpload,
    WebhookSend,
)
from signdigits.web.state import WebState
from signdigits.web.upload_jobs import SERVE_ROLE, submit_upload
from signdigits.web.upload_store import StoredUpload, Upload
from signdigits.web.uploads import store_uploads

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.post("", status_code=201, response_model=JobSubmitted,
             summary="Submit a server folder (JSON) or uploaded images/zips (multipart)",
             openapi_extra=request_body({"application/json": SubmitFolder,
                                         "multipart/form-data": SubmitUpload}))
async def submit(request: Request, state: StateDep, session: SessionDep) -> JobSubmitted:
    """A folder's job is answered once its row exists, while its walk goes on (the job
    shows ``submitting`` meanwhile; a web process stopped mid-walk leaves it ``submission
    interrupted``, which ``serve`` finishes when it starts again). An upload is walked
    before the answer: its files are all here already, and the answer then counts them;
    an upload that fails leaves no folder and no job. The answer lists what of the upload
    the job did without (``left_out``): a bad part costs only itself."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    stored = None
    if kind == "multipart/form-data":
        job_id, stored = await _submit_upload(request, state)
    elif kind == "application/json":
        body = validated(SubmitFolder, await json_body(request))
        folder = _allowed_folder(body.folder, state.settings,
                                 client=request.client.host if request.client else "")
        job_id = await run_in_threadpool(
            submit_in_background, folder, settings=state.settings, sessions=state.sessions,
            app=state.celery, threshold=body.threshold, batch_size=body.batch_size,
            role=SERVE_ROLE, webhook=body.webhook, name=body.name)
    else:
        raise HTTPException(415, "send application/json with a folder, or multipart/form-data "
                                 "with files")
    job = await run_in_threadpool(_described, session, job_id, state.settings)
    if stored is None:
        return JobSubmitted(**dict(job))
    return JobSubmitted(**dict(job), left_out=stored.left_out,
                        left_out_count=stored.left_out_count)


def _described(session: Session, job_id: str, settings: Settings) -> JobOut:
    return described(session, summary_of(session, resolve_job(session, ref=job_id), settings),
                     settings)


async def _submit_upload(request: Request, state: WebState) -> tuple[str, StoredUpload]:
    form = await request.form(max_files=100_000, max_fields=20)
    try:
        upload = validated(SubmitUpload, {
            "threshold": form.get("threshold"), "webhook": form.get("webhook"),
            "name": form.get("name") or None,
            "files": [f for f in form.getlist("files") if isinstance(f, UploadFile)]})
        if not upload.files:
            raise HTTPException(400, "no files uploaded (send one or more 'files' fields)")
        stored = await run_in_threadpool(
            store_uploads, [Upload(f.filename or "", f.file) for f in upload.files],
            settings=state.settings)
    finally:
        await form.close()
    # On failure the folder (and any job) is gone, whatever the answer says.
    name = upload.name or upload_name([f.filename or "" for f in upload.files])
    job_id = await run_in_threadpool(submit_upload, stored, settings=state.settings,
                                     sessions=state.sessions, app=state.celery,
                                     threshold=upload.threshold, webhook=upload.webhook,
                                     name=name)
    return job_id, stored


def _allowed_folder(folder: str, settings: Settings, *, client: str) -> Path | str:
    roots = settings.allowed_roots
    if roots:
        if is_object_url(folder):  # the schema parsed it
            if not objects_allowed(parse_object_url(folder), roots):
                raise HTTPException(403, f"{folder}: outside SIGNDIGITS_ALLOWED_ROOTS")
            return folder
        if not inside_allowed_roots(folder, roots):
            raise HTTPException(403, f"{folder}: outside SIGNDIGITS_ALLOWED_ROOTS")
    elif settings.environment != "development" or not is_loopback(client):
        raise HTTPException(403, "folder jobs over HTTP need SIGNDIGITS_ALLOWED_ROOTS (without "
                                 "it, only in development from this machine)")
    return folder if is_object_url(folder) else Path(folder)


@router.get("", response_model=JobPage, summary="Jobs, newest first")
def list_jobs(session: SessionDep, settings: SettingsDep,
              limit: Annotated[int, Query(ge=1, le=200)] = 20,
              cursor: Annotated[Offset, Query(description="the page before's next_cursor")
                                ] = None) -> JobPage:
    offset = cursor or 0  # an empty cursor is the first page ("" + limit was a 500)
    jobs = jobs_page(session, limit=limit, offset=offset)
    # Counted for the list only: one query for the page. A job's own answer and its
    # events, sent as often as its counts change, stay as cheap as its summary.
    reviewed = reviewed_counts(session, job_ids=[job.id for job in jobs[:limit]])
    return JobPage(items=[JobOut.of(summary_of(session, job, settings),
                                    reviewed=reviewed.get(job.id, 0)) for job in jobs[:limit]],
                   next_cursor=str(offset + limit) if len(jobs) > limit else None)


@router.get("/{job_id}", response_model=JobOut,
            summary="One job: counts, state, rate, the models that read it")
def get_job(job: DescribedJob) -> JobOut:
    return job


@router.patch("/{job_id}", response_model=JobOut, summary="Rename the job",
              openapi_extra=request_body({"application/json": JobRename}))
async def rename(job_id: JobRef, request: Request, state: StateDep) -> JobOut:
    body = validated(JobRename, await json_body(request))
    return await run_in_threadpool(_renamed, state, job_id, body.name or "")


def _renamed(state: WebState, job_id: str, name: str) -> JobOut:
    with state.sessions.begin() as session:
        job = resolve_job(session, ref=job_id)
        rename_job(session, job_id=job.id, name=name)
    return _described_afresh(state, job.id)


@router.delete("/{job_id}", response_model=JobDeleted,
               summary="Delete an ended job: its rows, reviews, hands and uploaded files")
def delete(job: FoundJob, state: StateDep) -> JobDeleted:
    """409 for a job that has not ended (cancel it first)."""
    removed = delete_job_everywhere(state.sessions, state.settings, job_id=job.id)
    return JobDeleted(id=job.id, name=job.name, files_removed=removed)


@router.post("/{job_id}/cancel", response_model=JobOut,
             summary="Skip the job's images not yet started")
async def cancel(job: FoundJob, state: StateDep) -> JobOut:
    """Answered once the job's walk has stopped (``cancelled``, its counts final), or
    after 10 s of a walk that has not yet stopped (``submitting``; it stops at its next
    part). Waits without holding a thread."""
    sessions, stall = state.sessions, state.settings.stall_seconds
    await run_in_threadpool(cancel_now, sessions, job_id=job.id)  # ended: JobFinished, 409
    await run_in_threadpool(send_if_ended, state.celery, sessions, job.id)
    deadline = time.monotonic() + CANCEL_WAIT_SECONDS
    while (not await run_in_threadpool(walk_over, sessions, job_id=job.id,
                                       stall_seconds=stall)
           and time.monotonic() < deadline):
        await asyncio.sleep(POLL_SECONDS)
    return await run_in_threadpool(_described_afresh, state, job.id)


@router.post("/{job_id}/webhook", response_model=JobOut,
             summary="Send the ended job's webhook again (to a new URL when given)",
             openapi_extra=request_body({"application/json": WebhookSend}))
async def send_webhook(job: FoundJob, request: Request, state: StateDep) -> JobOut:
    """Queued at once for an ended job (same ``webhook-id``, a new deadline); a job still
    running only takes the new ``url``. 409 for a job with no webhook and no ``url``; 400
    for a URL the server will not call (docs/webhooks.md)."""
    raw = await request.body()
    body = validated(WebhookSend, await json_body(request) if raw.strip() else {})
    await run_in_threadpool(send_webhook_again, state.celery, state.sessions, state.settings,
                            job_id=job.id, url=body.url)
    return await run_in_threadpool(_described_afresh, state, job.id)


@router.delete("/{job_id}/webhook", response_model=JobOut,
               summary="Stop the job's webhook: no further attempt")
def stop(job: FoundJob, state: StateDep) -> JobOut:
    """409 for a webhook already delivered or given up, or a job without one."""
    with state.sessions.begin() as session:
        stop_webhook(session, job_id=job.id)
    return _described_afresh(state, job.id)


def _described_afresh(state: WebState, job_id: str) -> JobOut:
    with state.sessions() as session:
        return _described(session, job_id, state.settings)
