"""One line in the worker's log for a task whose pool process died, not a traceback.

When a pool process dies mid-task (SIGKILLed, out of memory), Celery's main process logs
"Task handler raised error: WorkerLostError(...)" with a traceback. That traceback is
billiard's own bookkeeping (``mark_as_worker_lost`` raising the error to record it), not
the task's: the task's stack died with its process, and billiard's line "Process
'ForkPoolWorker-1' pid:... exited with 'signal 9 (SIGKILL)'" already says which process
and why. So the record keeps its level and the error's text, and says what happens next;
only the traceback goes. Any other error of that logger is left as it was.
"""

from __future__ import annotations

import logging

from celery.exceptions import WorkerLostError  # billiard's, as Celery re-exports it

# Where Celery logs it: celery.worker.request.Request.on_failure.
LOGGER = "celery.worker.request"


class LostProcessLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        kind, error, _ = record.exc_info or (None, None, None)
        if kind is not None and issubclass(kind, WorkerLostError):
            record.msg = ("a pool process died while it ran a task (%s); a late-acknowledged "
                          "task's message, as every batch's is, goes back on the queue")
            record.args = (getattr(error, "exc", error),)  # billiard wraps it
            record.exc_info = None
            record.exc_text = None
        return True


def install() -> None:
    """Once per process (idempotent): the worker's main process, where Celery logs it."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(f, LostProcessLine) for f in logger.filters):
        logger.addFilter(LostProcessLine())
