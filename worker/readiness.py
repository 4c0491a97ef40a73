"""Which of a worker's pool processes have their model loaded: ``inspect models_loaded``.

A worker answers Celery's ``ping`` as soon as its main process is up, while its pool
processes still spend seconds loading TensorFlow. Anything that must know the workers
can classify *now* (``bench`` before it starts its clock, a health check) asks
``celery -A signdigits.worker inspect models_loaded`` instead. Removing this means a ping-gated
benchmark times model loading as if it were the pipeline.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from multiprocessing.sharedctypes import SynchronizedArray

from celery.signals import worker_init, worker_process_shutdown
from celery.worker.control import inspect_command

_SLOTS = 1024  # more than any pool size; a child killed outright leaves its slot behind

# Pids of pool processes whose model is loaded. Created in the main process before the
# pool forks, so every child shares the same memory.
_loaded: SynchronizedArray | None = None


@worker_init.connect
def _create_slots(**_kwargs) -> None:
    global _loaded
    _loaded = multiprocessing.Array("q", _SLOTS)


def mark_model_loaded() -> None:
    """Called by a process that runs tasks once its model is loaded and warmed up."""
    if _loaded is None:
        return  # not under `celery worker` (a test or a one-off call)
    _set_slot(find=0, value=os.getpid())


@worker_process_shutdown.connect
def _mark_model_unloaded(**_kwargs) -> None:
    if _loaded is not None:
        _set_slot(find=os.getpid(), value=0)


def _set_slot(*, find: int, value: int) -> None:
    slots = _loaded
    assert slots is not None  # callers return early outside `celery worker`
    with slots.get_lock():
        for index in range(_SLOTS):
            if slots[index] == find:
                slots[index] = value
                return
        if value:  # every slot stale: overwrite one rather than stay "not ready" for ever
            slots[value % _SLOTS] = value


@inspect_command()
def models_loaded(state) -> dict:
    """Pool processes with their model loaded, out of how many."""
    # Prefork and solo pools list the processes that run tasks; a thread pool runs them in
    # this very process, which builds its model on the first task (worker.context).
    processes = state.consumer.pool.info.get("processes") or [os.getpid()]
    loaded = set(_loaded[:]) if _loaded is not None else set()
    return {"loaded": sum(pid in loaded for pid in processes), "processes": len(processes)}


def ask_models_loaded(app, *, name: str, timeout: float = 1.0) -> tuple[int, int] | None:
    """(loaded, processes) as worker ``name`` reports them; None if it did not answer."""
    replies = app.control.broadcast("models_loaded", destination=[name], reply=True,
                                    timeout=timeout)
    for reply in replies:
        status = reply.get(name)
        if isinstance(status, dict) and "loaded" in status:
            return int(status["loaded"]), int(status["processes"])
    return None


def wait_for_models(app, *, name: str, alive: Callable[[], bool], timeout: float = 180) -> None:
    """Block until worker ``name`` reports every pool process loaded; raise if it cannot.

    ``alive`` tells whether the worker process still runs, to fail at once if it died.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"worker {name} exited before its models were loaded")
        # A short wait for the reply: a broadcast sent before the worker listens is never
        # answered, and with the default second each such ask added up to 1 s to the wait.
        status = ask_models_loaded(app, name=name, timeout=0.2)
        if status and status[1] and status[0] == status[1]:
            return
        time.sleep(0.05)
    raise TimeoutError(f"worker {name}: models not loaded after {timeout:.0f}s")
