"""Flower as ``signdigits flower`` runs it: every path behind its basic auth, and bounded.

Flower 2 serves ``/metrics`` and ``/healthcheck`` without credentials (its own handlers
carry no ``@authenticated``, and no option adds it): after one job the metrics were
3.9 MB naming every batch, worker host and pid. Here both ask for the same credentials as
the rest. Its memory is capped too: at most ``MAX_TASKS`` tasks kept (Flower's
``max_tasks``, default 100,000), and the metrics labelled by task type, not by each
batch's display name, whose labels grew with every batch and no option bounded.

Run as ``python -m signdigits.stack.flower [flower options]``; Flower's own ``FLOWER_*``
variables still apply (``FLOWER_MAX_TASKS`` overrides the cap). ``serve --flower``
starts it as a :class:`FlowerProcess` on the stack it serves.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

MAX_TASKS = 10_000


def close_open_paths() -> None:
    """Put ``/metrics`` and ``/healthcheck`` behind Flower's authentication."""
    import tornado.web
    from flower.views import monitor  # type: ignore[import-untyped]

    for handler in (monitor.Metrics, monitor.Healthcheck):
        if not hasattr(handler.get, "__wrapped__"):  # once
            handler.get = tornado.web.authenticated(handler.get)


def label_metrics_by_task_type() -> None:
    """``classify_batch job=1a2b3c4d batch=7`` is counted as ``classify_batch``."""
    from flower.events import PrometheusMetrics  # type: ignore[import-untyped]

    observe = PrometheusMetrics.observe_task
    if getattr(observe, "by_task_type", False):
        return

    def observe_task(self, worker, event, task):
        name = event.get("name") or task.name or ""
        return observe(self, worker, {**event, "name": name.split(" ", 1)[0]}, task)

    observe_task.by_task_type = True  # type: ignore[attr-defined]
    PrometheusMetrics.observe_task = observe_task


def flower_command(*, address: str, port: int) -> list[str]:
    return [sys.executable, "-m", "signdigits.stack.flower", f"--port={port}",
            f"--address={address}"]


class FlowerProcess:
    """Flower in a child process that dies with us, on the broker ``broker_url`` names.

    The broker's URL and the credentials travel in its environment (``ps`` shows a
    command line to every local user).
    """

    def __init__(self, *, broker_url: str, address: str, port: int, basic_auth: str | None,
                 log: Path) -> None:
        from signdigits.stack.processes import die_with_parent

        env = {**os.environ, "SIGNDIGITS_BROKER_URL": broker_url}
        env.pop("FLOWER_BASIC_AUTH", None)
        if basic_auth:
            env["FLOWER_BASIC_AUTH"] = basic_auth
        self.address, self.port, self.log = address, port, log
        self._handle = open(log, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            flower_command(address=address, port=port), env=env, stdout=self._handle,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM))

    def wait_listening(self, timeout: float = 60.0) -> str | None:
        """None once Flower accepts connections; why not, if it exited or never did."""
        deadline = time.monotonic() + timeout
        host = "127.0.0.1" if self.address in ("", "0.0.0.0") else self.address
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"Flower exited (code {self.process.returncode}): {self.log_tail()}"
            try:
                with socket.create_connection((host.strip("[]"), self.port), timeout=1):
                    return None
            except OSError:
                time.sleep(0.2)
        return f"Flower did not listen on port {self.port} within {timeout:g} s"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._handle.close()
        self.log.unlink(missing_ok=True)  # a temporary file: its tail was said if it failed

    def log_tail(self, lines: int = 3) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def main(flower_arguments: list[str]) -> None:
    close_open_paths()
    label_metrics_by_task_type()
    os.environ.setdefault("FLOWER_MAX_TASKS", str(MAX_TASKS))
    from celery.__main__ import main as celery_main

    sys.argv = ["celery", "-A", "signdigits.worker", "flower", *flower_arguments]
    celery_main()


if __name__ == "__main__":
    main(sys.argv[1:])
