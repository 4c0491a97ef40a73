"""What ``serve`` repairs when it starts, from the jobs table: no command for anyone to run.

A ``serve`` killed (``kill -9``, the machine lost) mid-upload leaves either an upload
folder no job owns (killed while unpacking: thousands of files) or a job whose walk
stopped part-way (killed while submitting: its client never learned the id). So, in the
background once the server is up:

- an upload folder (a 32-hex-digit name under the upload folder) that no job owns and
  where nothing was written for :data:`ORPHAN_GRACE_SECONDS` is removed: the grace
  period keeps the upload another ``serve`` on the same folder is unpacking right now;
- an interrupted walk of one of serve's own jobs (an upload's folder, or a folder job a
  ``serve`` started, ``serve@host:pid``) whose producer is gone is finished by
  :func:`producer.submit.resume_job`: the rest of the folder recorded and sent, and the
  batches already sent again if the broker lost them.

Each thing done is said in one line.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from signdigits.config.settings import Settings
from signdigits.db.folders import owned_roots, unfinished_walks
from signdigits.db.jobs import producer_alive
from signdigits.web.upload_jobs import SERVE_ROLE, upload_settings
from signdigits.web.upload_store import upload_root

ORPHAN_GRACE_SECONDS = 3600.0
_UPLOAD_FOLDER = re.compile(r"[0-9a-f]{32}")  # web.uploads.store_uploads' names

Say = Callable[[str], None]


def repair_in_background(settings: Settings, *, say: Say) -> threading.Thread:
    """Start the repairs in a daemon thread (a big orphan takes a while to remove, and
    the server answers meanwhile); the thread."""
    def repair() -> None:
        try:
            remove_orphan_uploads(settings, say=say)
            resume_interrupted_walks(settings, say=say)
        except Exception as exc:  # noqa: BLE001 - the database may be down: said, not raised
            say(f"start-up repairs stopped: {exc.__class__.__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")

    thread = threading.Thread(target=repair, name="serve start-up repairs", daemon=True)
    thread.start()
    return thread


def remove_orphan_uploads(settings: Settings, *, say: Say,
                          grace: float = ORPHAN_GRACE_SECONDS) -> list[Path]:
    """Remove the upload folders no job owns, untouched for ``grace`` seconds; them."""
    from signdigits.db.session import session_factory

    root = upload_root(settings)
    try:
        candidates = [entry for entry in root.iterdir() if _UPLOAD_FOLDER.fullmatch(entry.name)
                      and entry.is_dir() and not entry.is_symlink()]
    except OSError:  # no upload yet (no folder), or one serve cannot read: nothing to do
        return []
    with session_factory(settings.database_url)() as session:
        owned = owned_roots(session, roots=[str(entry) for entry in candidates])
    removed = []
    for folder in candidates:
        if str(folder) in owned or _written_within(folder, grace):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
            say(f"removed upload folder {folder}: no job owns it, nothing written in it "
                f"for over {grace / 60:g} minutes (an upload interrupted by a stop)")
    return removed


def _written_within(folder: Path, seconds: float) -> bool:
    """Whether anything in ``folder`` (itself included) was modified in the last
    ``seconds``: a file being written, a folder gaining entries. Links are not followed."""
    since = time.time() - seconds
    for path, folders, files in os.walk(folder):
        for name in (path, *(os.path.join(path, entry) for entry in folders + files)):
            try:
                if os.lstat(name).st_mtime >= since:
                    return True
            except OSError:  # removed meanwhile
                continue
    return False


def resume_interrupted_walks(settings: Settings, *, say: Say) -> int:
    """Finish the interrupted walks of serve's own jobs; how many were finished."""
    from signdigits.broker.app import create_app
    from signdigits.db.session import session_factory
    from signdigits.producer.submit import resume_job

    sessions = session_factory(settings.database_url)
    uploads = upload_root(settings)
    with sessions() as session:
        walks = [job for job in unfinished_walks(session)
                 if (_inside(job.root, uploads) or _walked_by_serve(job.producer))
                 and not producer_alive(job, stall_seconds=settings.stall_seconds)]
    finished = 0
    for job in walks:
        say(f"job {job.id}: resuming its interrupted submission of {job.root}")
        started = time.monotonic()
        try:
            done = resume_job(create_app(settings), sessions=sessions, job=job,
                              settings=upload_settings(settings), role=SERVE_ROLE)
        except Exception as exc:  # noqa: BLE001 - one job's problem, said; the next goes on
            say(f"job {job.id}: its submission could not be resumed: {exc}")
            continue
        finished += 1
        sent = "lost by the broker or never sent" if done.lost else "never sent"
        say(f"job {job.id}: submission finished in {time.monotonic() - started:.1f} s: "
            f"{done.found:,} more images; {done.resent:,} batches sent ({sent})")
    return finished


def _inside(folder: str, root: Path) -> bool:
    return Path(folder).parent == root


def _walked_by_serve(producer: str | None) -> bool:
    return bool(producer) and str(producer).startswith(f"{SERVE_ROLE}@")
