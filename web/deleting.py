"""Deleting a job for good: its rows (images, batches, reviews, hands) and, for an
upload, the folder of files the server stored for it.

Shared by ``DELETE /api/jobs/{id}`` and ``signdigits delete``. A job that has not ended
is refused: workers may still hold its batches.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from signdigits.config.settings import Settings
from signdigits.db.jobs import delete_job
from signdigits.db.models import Job
from signdigits.db.progress import summarize_job
from signdigits.files.paths import real_path
from signdigits.web.upload_store import upload_root


def delete_job_everywhere(sessions: sessionmaker[Session], settings: Settings, *,
                          job_id: str) -> bool:
    """Delete the job (``JobRunning`` if it has not ended); whether files were removed.

    The files go only when the job's folder is one the server made for an upload (a
    folder of its own under the upload folder) and no other job names it; a folder job's
    files are the user's and stay.
    """
    with sessions.begin() as session:
        job = session.get_one(Job, job_id)
        summary = summarize_job(session, job=job, stall_seconds=settings.stall_seconds)
        root = job.root
        delete_job(session, job_id=job_id, finished=summary.state.finished)
        others = session.scalar(select(Job.id).where(Job.root == root).limit(1))
    folder = _upload_folder(root, settings)
    if folder is None or others is not None:
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()


def _upload_folder(root: str, settings: Settings) -> Path | None:
    uploads = upload_root(settings)
    folder = real_path(root)
    return folder if folder.parent == uploads and folder.is_dir() else None
