"""The one-machine stack behind ``signdigits run``: an embedded broker and worker processes.

Nothing here is needed in a cluster (docker compose starts Redis and workers itself);
it exists so that a new user gets the real pipeline, real Celery workers included, from
one command with nothing installed by hand.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

from signdigits.stack.valkey import EmbeddedBroker
from signdigits.stack.workers import WorkerProcess


class LocalStack:
    """A broker (embedded unless ``broker_url`` is given) and one worker process.

    ``run`` and ``bench`` both start the pipeline this way; ``stop`` takes everything
    down even if another Ctrl-C arrives meanwhile, because an orphaned worker keeps a
    model (~700 MB) per process alive.
    """

    def __init__(self, *, broker_url: str | None, database_url: str, concurrency: int,
                 name: str) -> None:
        self.broker = EmbeddedBroker() if not broker_url else None
        self.broker_url = broker_url
        self.database_url, self.concurrency, self.name = database_url, concurrency, name
        self.logs = Path(tempfile.mkdtemp(prefix="signdigits-stack-"))
        self.worker: WorkerProcess | None = None

    def start(self) -> str:
        """Start the broker and the worker (which loads the model meanwhile); the URL."""
        broker_url = self.broker.start() if self.broker is not None else self.broker_url
        assert broker_url is not None  # the constructor embeds one when none is given
        self.broker_url = broker_url
        env = {**os.environ, "SIGNDIGITS_BROKER_URL": broker_url,
               "SIGNDIGITS_DATABASE_URL": self.database_url}
        self.worker = WorkerProcess(env=env, concurrency=self.concurrency, name=self.name,
                                    log=self.logs / "worker.log")
        return broker_url

    def failure(self) -> str | None:
        """Why the stack can no longer classify (its worker or broker exited), or None."""
        if self.worker is not None and not self.worker.alive():
            tail = self.worker.log_tail(5).strip()
            return (f"the embedded worker exited (code {self.worker.process.returncode})"
                    + (f"; its last lines:\n{tail}" if tail else ""))
        server = self.broker._server if self.broker is not None else None
        if server is not None and server.process is not None and server.process.poll() is not None:
            return f"the embedded broker exited (code {server.process.returncode})"
        return None

    def stop(self, *, abandon: bool = False) -> None:
        """Stop the worker, then the broker. ``abandon``: nothing the worker holds is wanted.

        True once the job is wholly stored, or when the user interrupted `run` (its pending
        rows stay recorded, and `resume` sends them again: a batch cut short is stored in
        one transaction or not at all). Then, on the embedded broker, which goes next with
        any unacknowledged message, the worker is killed rather than shut down warm, which
        takes Celery ~2 s of pool sleeps. A configured broker may hold other jobs' batches
        and keeps what a worker does not acknowledge: warm, always.
        """
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if self.worker is not None and abandon and self.broker is not None:
                self.worker.kill()
            elif self.worker is not None:
                self.worker.stop()
        finally:
            try:
                if self.broker is not None:
                    self.broker.stop()
            finally:
                shutil.rmtree(self.logs, ignore_errors=True)
                signal.signal(signal.SIGINT, previous)


