"""How ``bench`` starts its job: a fresh ``submit`` process, or a POST to a web server.

A fresh ``signdigits submit`` pays Python's start-up and its libraries' imports
(SQLAlchemy, psycopg, redis-py, Celery, pydantic: 1.4-1.6 CPU-seconds on a 2-core AVX2
machine) before it records the job, and the workers wait meanwhile. ``signdigits serve``,
kept running, has paid them once: ``--submit http`` times the same job from a
``POST /api/jobs``, which is how a service that submits many jobs would run it. Both are
real paths a user takes; the bench says which one it timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from signdigits.bench.procstat import peak_rss_mb

# urllib.request is imported where it is used: the CLI imports this module for SubmitBy,
# and urllib.request would add ~40 ms to every command's start-up, `submit`'s included.


class SubmitBy(StrEnum):
    COMMAND = "command"  # a fresh `signdigits submit` process
    HTTP = "http"  # POST /api/jobs to a `signdigits serve` started before the clock


@dataclass(frozen=True)
class Submitted:
    job_id: str
    # The command's exit after the clock started, and its peak memory. None for a web
    # server: its walk's end is the job's submitted_at, its peak read once the job is done.
    producer_seconds: float | None
    producer_peak_mb: float | None


def submit_by_command(folder: Path, *, env: dict[str, str], batch_size: int, inline: bool,
                      started: float) -> Submitted:
    """``python -m signdigits submit`` in its own process, waited for."""
    submit = subprocess.Popen(
        [sys.executable, "-m", "signdigits", "submit", str(folder), "--batch-size",
         str(batch_size), "--inline" if inline else "--paths"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    peak = 0.0
    while submit.poll() is None:  # the producer's own high-water mark, read live
        peak = max(peak, peak_rss_mb(submit.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    stdout, stderr = submit.communicate()
    if submit.returncode:
        raise RuntimeError(f"submit failed: {stderr.strip()}")
    return Submitted(stdout.strip().splitlines()[0], seconds, peak)


@dataclass(frozen=True)
class WebServer:
    process: subprocess.Popen
    url: str

    def submit(self, folder: Path, *, batch_size: int) -> Submitted:
        """``POST /api/jobs``: answered once the job's row exists; the walk goes on after."""
        import urllib.error
        import urllib.request

        body = json.dumps({"folder": str(folder), "batch_size": batch_size}).encode()
        request = urllib.request.Request(f"{self.url}/api/jobs", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                job_id = json.load(answer)["id"]
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"POST /api/jobs: {exc.code} {exc.read().decode()[:300]}") from None
        return Submitted(job_id, None, None)


@contextmanager
def web_server(env: dict[str, str], *, timeout: float = 90.0) -> Iterator[WebServer]:
    """``signdigits serve`` on a free loopback port, on the bench's broker and database,
    started (imports paid) before the clock, stopped after."""
    from signdigits.stack.valkey import free_port

    port = free_port()  # free now; serve binds it a moment later
    env = {**env, "SIGNDIGITS_ENVIRONMENT": "development"}  # folder jobs from loopback
    # A file, not a pipe: a pipe nobody reads fills, and serve would stall writing its log.
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "signdigits", "serve", "--port", str(port)], env=env,
            stdout=log, stderr=subprocess.STDOUT, text=True,
        )
        server = WebServer(process, f"http://127.0.0.1:{port}")
        try:
            _wait_until_answering(server, log=log, timeout=timeout)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_answering(server: WebServer, *, log, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"signdigits serve exited: {log.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=2):
                return
        except OSError:  # not listening yet (connection refused is an OSError)
            time.sleep(0.1)
    raise TimeoutError(f"signdigits serve (pid {server.process.pid}) did not answer "
                       f"within {timeout:.0f} s")
