"""Flower as ``signdigits flower`` runs it: every path behind its basic auth, and bounded.

Flower 2 serves ``/metrics`` and ``/healthcheck`` without credentials (its own handlers
carry no ``@authenticated``, and no option adds it): after one job the metrics were
3.9 MB naming every batch, worker host and pid. Here both ask for the same credentials as
the rest. Its memory is capped too: at most ``MAX_TASKS`` tasks kept (Flower's
``max_tasks``, default 100,000), and the metrics labelled by task type, not by each
batch's display name, whose labels grew with every batch and no option bounded.

Run as ``python -m signdigits.stack.flower [flower options]``; Flower's own ``FLOWER_*``
variables still apply (``FLOWER_MAX_TASKS`` overrides the cap).
"""

from __future__ import annotations

import os
import sys

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


def main(flower_arguments: list[str]) -> None:
    close_open_paths()
    label_metrics_by_task_type()
    os.environ.setdefault("FLOWER_MAX_TASKS", str(MAX_TASKS))
    from celery.__main__ import main as celery_main

    sys.argv = ["celery", "-A", "signdigits.worker", "flower", *flower_arguments]
    celery_main()


if __name__ == "__main__":
    main(sys.argv[1:])
