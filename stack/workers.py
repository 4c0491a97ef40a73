"""A Celery worker in a child process, started as a cluster would start it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from signdigits.stack.processes import (
    die_with_parent,
    reap_group,
    reaping_orphans,
)


class WorkerProcess:
    """``celery -A signdigits.worker worker`` in a child process, as a cluster would run it."""

    def __init__(
        self, *, env: dict[str, str], concurrency: int, name: str, log: Path,
        loglevel: str = "WARNING", extra: tuple[str, ...] = (), prefix: tuple[str, ...] = (),
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        self._handle = open(log, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [*prefix, *worker_command(concurrency=concurrency, name=name, loglevel=loglevel,
                                      extra=extra)],
            env=env,
            cwd=cwd,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the worker cleanly
            # SIGKILL: its warm shutdown could wait on a task; its pool children get
            # SIGKILL from Celery when it dies, and their unacknowledged batches return.
            preexec_fn=die_with_parent(signal.SIGKILL),
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)  # warm shutdown: finish current tasks
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._handle.close()

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL to the worker and its pool processes (one process group), no goodbye.

        Returns once the whole group is gone, not only the worker: a pool process still
        dying when `run` exits would be a stray the next command (or test) sees.
        """
        group = self.process.pid
        with reaping_orphans():
            with contextlib.suppress(ProcessLookupError):  # it had exited, its group too
                os.killpg(group, signal.SIGKILL)
            self.process.wait()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                reap_group(group)
                try:
                    os.killpg(group, 0)  # succeeds while any member (even a zombie) is left
                except ProcessLookupError:
                    break
                time.sleep(0.01)
        self._handle.close()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def worker_command(
    *, concurrency: int, name: str, loglevel: str = "WARNING", extra: tuple[str, ...] = ()
) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "signdigits.worker", "worker",
        "--pool", "prefork", "--concurrency", str(concurrency), "--hostname", name,
        "--loglevel", loglevel, "--task-events",
        "--without-mingle", "--without-gossip", *extra,
    ]
