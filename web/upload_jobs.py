"""An upload's folder made a job, or nothing at all.

The folder is written before the job exists, so every way its submission can fail must
take it away again: before the job's row (a broker that is down or frozen, a database
that is unreachable) the folder is removed and the error answered as it is ("nothing
was recorded"); after the row (the broker lost mid-walk) the job is removed too, since
the client, answered with an error, never learns its id. What a killed process leaves
(no ``except`` runs) is the start-up's to clean: :mod:`web.serve_start`.
"""

from __future__ import annotations

import logging
import shutil

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from signdigits.config.settings import Settings
from signdigits.db.folders import discard_job
from signdigits.producer.submit import submit_folder
from signdigits.web.upload_store import StoredUpload, UploadRefused, upload_root

log = logging.getLogger(__name__)

# The producer's role on the jobs serve walks ("serve@host:pid"): a restarted serve
# resumes those its predecessor left interrupted.
SERVE_ROLE = "serve"


def upload_settings(settings: Settings) -> Settings:
    """The settings an upload's job is walked and read with: the upload folder allowed."""
    return settings.model_copy(
        update={"allowed_roots": [*settings.allowed_roots, upload_root(settings)]})


def submit_upload(stored: StoredUpload, *, settings: Settings, sessions: sessionmaker[Session],
                  app: Celery, threshold: float | None, webhook: str | None = None,
                  name: str | None = None) -> str:
    """Submit the upload's folder, with an error row for each image it could not keep;
    the job's id. On any failure nothing is kept."""
    folder = stored.folder
    recorded: list[str] = []
    try:
        return submit_folder(folder, settings=upload_settings(settings), sessions=sessions,
                             app=app, threshold=threshold, role=SERVE_ROLE, webhook=webhook,
                             name=name, error_rows=stored.error_rows,
                             inline=settings.upload_inline,  # unless workers see the folder
                             on_recorded=recorded.append).job_id
    except BaseException as exc:
        if not recorded:  # its own answer holds: nothing was recorded
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job_id, reason = recorded[0], _reason(exc)
        try:
            with sessions.begin() as session:
                deleted = discard_job(session, job_id=job_id, reason=(
                    f"the upload's submission failed ({reason}); its files were removed"))
        except Exception as cleanup:  # noqa: BLE001 - the database may be why it failed
            log.warning("upload job %s: submission failed (%s) and the job could not be "
                        "removed (%s): serve resumes it when it starts again",
                        job_id, reason, _reason(cleanup))
            raise exc from None
        shutil.rmtree(folder, ignore_errors=True)
        if not isinstance(exc, Exception):  # Ctrl-C, a cancelled thread: theirs to report
            raise
        kept = ("nothing was kept" if deleted
                else f"job {job_id} was cancelled and the files removed")
        raise UploadRefused(f"the upload could not be submitted ({reason}); {kept}",
                            status=503) from None


def _reason(exc: BaseException) -> str:
    """What went wrong, in one line: the walk's own error, not its `resume` advice."""
    cause = exc.__cause__ or exc
    cause = getattr(cause, "orig", None) or cause  # a database error's driver message
    lines = str(cause).strip().splitlines()
    return f"{cause.__class__.__name__}: {lines[0]}" if lines else cause.__class__.__name__
