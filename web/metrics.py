"""``GET /metrics``: Prometheus' text format, counted when scraped.

Counts come from the database (jobs by state, images by outcome, images finished in the
last minute, webhooks) and the broker (queued and unacknowledged messages, the workers'
heartbeats with their model version) at scrape time: no per-process counter is lost when
`serve` restarts, and several web processes report the same numbers. The counters add
back what deleted jobs took with them (``deleted_totals``, db/deleted.py), so they never
fall; what is there now (pending rows among them) is a gauge. Only the batch
seconds histogram is this process's own: it is built from the workers' task events
(``task-succeeded`` carries each batch's runtime), heard from the first scrape on.
prometheus_client (Prometheus' own Python client, already installed with Flower) writes
the format, so names, escaping and the histogram's buckets are the ecosystem's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from celery import Celery
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from signdigits.broker.depths import queue_depths
from signdigits.broker.events import TaskEvents, phases
from signdigits.broker.liveness import workers_online
from signdigits.db.metrics import image_counts, images_finished_since, jobs_by_state
from signdigits.db.webhooks import webhooks_by_state
from signdigits.web.state import WebState

log = logging.getLogger(__name__)
RATE_WINDOW_SECONDS = 60.0
# Batches take seconds to minutes (128 photos at 30-60 images/s per process).
BATCH_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class ScrapeTime(Collector):
    """Everything read from the database and the broker when Prometheus scrapes."""

    def __init__(self, state: WebState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        settings = self.state.settings
        with self.state.sessions() as session:
            states = jobs_by_state(session, stall_seconds=settings.stall_seconds)
            counts = image_counts(session)
            recent = images_finished_since(session, seconds=RATE_WINDOW_SECONDS)
            webhooks = webhooks_by_state(session)
        jobs = GaugeMetricFamily("signdigits_jobs", "Jobs by state", labels=["state"])
        for name, count in states.items():
            jobs.add_metric([name], count)
        yield jobs
        yield CounterMetricFamily("signdigits_jobs_deleted", "Jobs deleted (their image "
                                  "rows stay counted in signdigits_images_total)",
                                  value=counts.deleted_jobs)
        # A counter only rises: the rows that reached an outcome, the deleted jobs' too.
        # Pending rows go down as work proceeds: they are in the gauge, never here.
        images = CounterMetricFamily("signdigits_images", "Image rows that reached each "
                                     "outcome (classified: above_threshold or "
                                     "below_threshold), deleted jobs' included",
                                     labels=["outcome"])
        for name, count in counts.totals.items():
            images.add_metric([name], count)
        yield images
        rows = GaugeMetricFamily("signdigits_image_rows", "Image rows in the database now, "
                                 "by outcome (pending: not yet classified)",
                                 labels=["outcome"])
        for name, count in counts.rows.items():
            rows.add_metric([name], count)
        yield rows
        yield GaugeMetricFamily("signdigits_images_per_second", "Images stored per second "
                                "over the last minute", value=recent / RATE_WINDOW_SECONDS)
        hooks = GaugeMetricFamily("signdigits_webhooks", "Jobs' webhooks by state",
                                  labels=["state"])
        for name, count in webhooks.items():
            hooks.add_metric([name], count)
        yield hooks
        yield CounterMetricFamily("signdigits_webhook_attempts", "Webhook POSTs made, "
                                  "deleted jobs' included", value=counts.webhook_attempts)
        yield from self._broker()

    def _broker(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("signdigits_broker_up", "1 if the broker answered this scrape")
        try:
            depths, unacked = queue_depths(self.state.celery)
            workers = workers_online(self.state.celery)
        except Exception as exc:  # noqa: BLE001 - the database's numbers still count
            log.warning("metrics: broker unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        queued = GaugeMetricFamily("signdigits_queued_messages", "Messages waiting in the "
                                   "broker, per queue (batches on signdigits)", labels=["queue"])
        for queue, depth in depths.items():
            queued.add_metric([queue], depth)
        yield queued
        yield GaugeMetricFamily("signdigits_unacked_messages", "Messages delivered to a "
                                "worker and not yet acknowledged (running or reserved)",
                                value=unacked)
        yield GaugeMetricFamily("signdigits_workers_online", "Workers whose heartbeat is "
                                "fresh", value=len(workers))
        info = GaugeMetricFamily("signdigits_worker_info", "One per worker online, labelled "
                                 "with the model version it serves",
                                 labels=["worker", "model_version"])
        for node, beat in sorted(workers.items()):
            info.add_metric([node, str(beat.get("model") or "unknown")], 1)
        yield info


class BatchSeconds(TaskEvents):
    """The workers' task events, kept only as the batch seconds histogram."""

    def __init__(self, app: Celery, histogram: Histogram) -> None:
        super().__init__(app, history=False)
        self.histogram = histogram

    @property
    def running(self) -> bool:
        """Still listening, or still subscribing (False once its thread ended)."""
        return self._thread.is_alive() or not self._thread.ident

    def _listen(self) -> None:
        try:
            super()._listen()
        except Exception as exc:  # noqa: BLE001 - the broker went away: the next scrape
            log.warning("metrics: stopped hearing the workers' task events: %s", exc)

    def handle(self, event: dict) -> None:
        super().handle(event)
        # A batch's task returns its phases; a webhook's or a prediction's does not.
        if event.get("type") == "task-succeeded" and phases(event.get("result")):
            self.histogram.observe(float(event.get("runtime") or 0.0))


class WebMetrics:
    """One per application: its registry, and its task-event listener once started."""

    def __init__(self, state: WebState) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(ScrapeTime(state))
        self.batch_seconds = Histogram(
            "signdigits_batch_seconds", "Seconds a worker spent on a batch (from its "
            "task-succeeded event)", buckets=BATCH_BUCKETS, registry=self.registry)
        self.listening = Gauge("signdigits_task_events_listening", "1 once this process "
                               "hears the workers' task events (the histogram counts from "
                               "then on)", registry=self.registry)
        self._celery = state.celery
        self._listener: BatchSeconds | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def scrape(self) -> bytes:
        self._listen()
        listener = self._listener
        self.listening.set(1 if listener is not None and listener.subscribed else 0)
        return generate_latest(self.registry)

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            self._stopped = True
        if listener is not None:
            listener.stop()

    def _listen(self) -> None:
        """Start listening (in a thread: subscribing waits for the broker), again after a
        failure, never twice at once."""
        with self._lock:
            if self._stopped or (self._listener is not None and self._listener.running):
                return
            self._listener = BatchSeconds(self._celery, self.batch_seconds)
            listener = self._listener

        def start() -> None:
            try:
                listener.start()
            except Exception as exc:  # noqa: BLE001 - the next scrape tries again
                log.warning("metrics: cannot hear the workers' task events: %s", exc)

        threading.Thread(target=start, name="metrics-events", daemon=True).start()
