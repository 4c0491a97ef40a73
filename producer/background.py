"""A folder's submission started in a thread: its job id as soon as the row exists.

A million images take minutes to walk. :func:`submit_in_background` returns once
:func:`producer.submit.submit_folder` has recorded the job (it shows ``submitting``
meanwhile) and leaves the walk going on in a daemon thread; a process stopped mid-walk
leaves the job ``submission interrupted``, which ``signdigits resume`` finishes.

What stops the submission before its row exists (a missing or image-less folder, a
broker that is down, a model that cannot be read) is raised to the caller as it was
raised; what stops it later is recorded on the job by the walk itself, and logged here.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from signdigits.config.settings import Settings
from signdigits.producer.submit import submit_folder

log = logging.getLogger(__name__)


def submit_in_background(
    root: Path | str,
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    app: Celery,
    threshold: float | None = None,
    batch_size: int | None = None,
    inline: bool | None = None,
    role: str | None = None,
    webhook: str | None = None,
    name: str | None = None,
) -> str:
    """Start submitting ``root`` in a thread; the job's id once its row exists.

    Blocks until then (the folder's first part is walked and the broker asked first), so
    call it off an event loop. Raises whatever ended the submission before the row was
    recorded, and nothing after: the walk then goes on, or stops on its own record.
    """
    outcome: queue.SimpleQueue[str | BaseException] = queue.SimpleQueue()
    recorded = threading.Event()

    def on_recorded(job_id: str) -> None:
        recorded.set()
        outcome.put(job_id)

    def walk() -> None:
        try:
            submit_folder(root, settings=settings, sessions=sessions, app=app,
                          threshold=threshold, batch_size=batch_size, inline=inline,
                          on_recorded=on_recorded, role=role, webhook=webhook, name=name)
        except BaseException as exc:  # noqa: BLE001 - the caller, or the log, reports it
            if not recorded.is_set():
                outcome.put(exc)
            else:  # the job's row says why (submission interrupted); the log says it too
                log.error("the walk of %s stopped: %s", root, exc)
        else:
            if not recorded.is_set():  # submit_folder records before it walks: never so
                outcome.put(RuntimeError(f"the submission of {root} recorded no job"))

    threading.Thread(target=walk, name=f"walk {root}", daemon=True).start()
    answer = outcome.get()
    if isinstance(answer, BaseException):
        raise answer
    return answer
