"""``worker.lost``: a pool process that died is one line in the worker's log; any other
error that Celery's request logger reports keeps its traceback."""

from __future__ import annotations

import io
import logging

import pytest
from billiard.einfo import ExceptionInfo
from celery.exceptions import WorkerLostError

from signdigits.worker import lost


def _logged(error: Exception) -> str:
    """What Celery's Request.on_failure writes for ``error``, raised as billiard raises it."""
    try:
        raise error
    except Exception:  # noqa: BLE001 - captured the way billiard captures it
        einfo = ExceptionInfo()
    logger = logging.getLogger(lost.LOGGER)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    try:
        lost.install()
        lost.install()  # a second import of the app adds no second filter
        logger.error("Task handler raised error: %r", einfo.exception.exc,
                     exc_info=einfo.exc_info)
    finally:
        logger.removeHandler(handler)
        logger.filters = [f for f in logger.filters if not isinstance(f, lost.LostProcessLine)]
    return out.getvalue()


def test_a_process_that_died_is_one_line():
    text = _logged(WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL) Job: 1."))
    assert text.count("\n") == 1, text
    assert text.startswith("ERROR a pool process died while it ran a task (Worker exited "
                           "prematurely: signal 9 (SIGKILL) Job: 1.)"), text
    assert "Traceback" not in text


@pytest.mark.parametrize("error", [RuntimeError("a real bug"), OSError(28, "disk full")])
def test_other_errors_keep_their_traceback(error):
    text = _logged(error)
    assert text.startswith("ERROR Task handler raised error: ")
    assert "Traceback (most recent call last)" in text
