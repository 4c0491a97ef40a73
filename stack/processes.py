"""Child processes that never outlive us: they die with their parent, and a terminated
command stops them as Ctrl-C would.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal


class StackError(RuntimeError):
    """The local pipeline could not be started or died; the message says why."""


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


_PR_SET_CHILD_SUBREAPER = 36


@contextlib.contextmanager
def reaping_orphans():
    """Within it, this process's orphaned descendants become its children, not PID 1's.

    A killed worker's pool processes are orphans whose reaping falls to PID 1, and the
    PID 1 of some containers and microVMs reaps only every second or so: ``kill`` waited
    1.2-1.5 s on their zombies (measured on this project's CI machine). As their
    subreaper we reap them at once. Off again on leaving, so that later orphans are not
    left as our zombies; one outside the worker's process group, orphaned meanwhile
    (Celery's pool has none), would stay our zombie until we exit.
    """
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is None or prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        yield False
        return
    try:
        yield True
    finally:
        prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def die_with_parent(signum: int):
    """A ``preexec_fn`` after which the child gets ``signum`` when this process dies.

    ``stop`` and :func:`stop_on_termination` cover every ending but ``kill -9`` and a
    crash; then nothing of ours runs, and the broker and workers (~700 MB per process)
    would go on without us. Linux delivers the signal when the thread that started the
    child exits: ours are started from the main thread, which lives as long as we do.
    Celery's pool processes already die with their worker the same way.
    """
    parent = os.getpid()
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)  # found before the fork
    if prctl is None:
        return None  # not Linux: the parent's own stop is all there is

    def arrange() -> None:
        if prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0 and os.getppid() != parent:
            os.kill(os.getpid(), signum)  # the parent died before the prctl took effect

    return arrange


def reap_group(group: int) -> None:
    """Reap those of the process group's zombies that are our children (none may be)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-group, os.WNOHANG)[0]:
            pass


def stop_on_termination() -> None:
    """Make ``kill`` and a closed terminal raise KeyboardInterrupt, as Ctrl-C does.

    A :class:`LocalStack`'s worker and broker run in their own sessions, so without this a
    terminated ``run`` or ``bench`` would leave them (and ~700 MB per worker process)
    running: its ``finally`` blocks only run for an exception.
    """
    def interrupt(signum, _frame) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
