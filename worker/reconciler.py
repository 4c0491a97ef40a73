"""The workers' reconciler: lost batches are sent again, a dead worker's are given back.

No fault should end in "run this command": the manifest in SQL is the record, so the
workers repair the queue from it.

- **A dead worker's batches** (SIGKILLed whole, its machine gone) stay in kombu's
  ``unacked`` hash until ``SIGNDIGITS_VISIBILITY_TIMEOUT`` (an hour by default). Every
  worker beats a heartbeat listing the messages it holds (:mod:`broker.liveness`); a
  message delivered over 15 s ago that no live worker holds is put back on its queue.
- **A lost message** (a broker restarted without persistence; kombu's window between
  BRPOP and its ``unacked`` write, when the worker dies in it) leaves pending rows that no
  message will ever reach. A batch of a submitted job that is stalled as ``status`` says
  it (no row stored for ``SIGNDIGITS_STALL_SECONDS``), still has pending images, was last
  sent at least that long ago, and of which the broker holds no message (queued or
  unacknowledged: a worker's reserved message is unacknowledged too) is sent again, and
  ``batches.resent_at`` records it: at most one re-send per batch per stall period, so
  the reconciler never floods the queue, whatever it finds. One INFO line per re-send.
  A job whose messages carried the images' bytes (``--inline``) is not re-sent here (the
  workers may not see its files): a WARNING names the ``resume`` command instead.

Who runs it: every worker, in its main process (a Celery bootstep with two threads: the
heartbeat, and the pass), and for each pass (every 5 s, or every half stall period if
that is shorter) one process in the whole cluster: the one that takes a Redis lock
expiring with the period. Not one elected process or a service of its own: nothing more
to deploy or keep alive; repair is needed exactly when some worker could do the work, so
a worker is the right place; and a holder that dies frees the lock by its expiry, which
is the whole fail-over. The same workers run inside ``run`` and ``serve``'s embedded
stack, so a ``serve`` started again continues jobs an earlier one left pending.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from celery import bootsteps
from celery.utils.log import get_logger

from signdigits.broker.liveness import (
    HEARTBEAT_SECONDS,
    beat,
    count_pass,
    restore_dead_workers_messages,
    take_turn,
)
from signdigits.broker.messages import TASK_NAME
from signdigits.broker.sending import held_batches, send_batch, sender

if TYPE_CHECKING:
    from signdigits.db.recovery import StalledJob

# Celery's logger tree: the worker's own log level and handler apply (INFO with -l INFO).
log = get_logger(__name__)

PASS_SECONDS = 5.0  # at most; a shorter stall period gets a pass every half of it
SECOND_LOOK_SECONDS = 0.5  # a batch missed by one look is looked for again after this


def pass_seconds(stall_seconds: int) -> float:
    return max(0.5, min(PASS_SECONDS, stall_seconds / 2))


class Reconciler(bootsteps.StartStopStep):
    """The bootstep: started after the pool (whose processes are forked by then)."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, parent, **kwargs) -> None:
        super().__init__(parent, **kwargs)
        self.stopping = threading.Event()
        self.beating = False

    def start(self, parent) -> None:
        app, node = parent.app, parent.hostname
        self.stopping.clear()
        from signdigits.config.settings import get_settings

        model = _model_version(get_settings())
        if not self.beating:
            # Beats until the process ends, not until stop(): a warm shutdown stops this
            # step before the pool, which then finishes its batches, and a batch held more
            # than 15 s past a silent heartbeat was given back to another worker while it
            # was still being read. A process that ends takes its beats with it.
            self.beating = True
            _every(HEARTBEAT_SECONDS, threading.Event(), "heartbeat",
                   lambda: beat(app, node=node, pid=os.getpid(), held=held_by_this_worker(),
                                model=model))

        period = pass_seconds(get_settings().stall_seconds)

        def turn() -> None:
            if take_turn(app, node=node, seconds=period):
                reconcile(app)

        _every(period, self.stopping, "reconciler", turn)

    def stop(self, parent) -> None:
        self.stopping.set()


def _model_version(settings) -> str | None:
    """The version of the model this worker's processes load (its artifact's header),
    or None if it cannot be read here (the processes then say why in the log)."""
    from signdigits.serving.artifact import read_model_info, resolve_model_path

    try:
        return read_model_info(resolve_model_path(settings.model_path)).version
    except Exception:  # noqa: BLE001 - the heartbeat matters more than its label
        return None


def _every(seconds: float, stopping: threading.Event, name: str, work: Callable) -> None:
    def loop() -> None:
        failing = ""
        while True:
            try:
                work()
                failing = ""
            except Exception as exc:  # noqa: BLE001 - a broker or database outage: next time
                lines = str(exc).strip().splitlines()  # SQLAlchemy's: the statement too
                problem = f"{exc.__class__.__name__}: {lines[0] if lines else ''}"
                if problem != failing:  # once per distinct failure, not every 5 s
                    log.warning("%s: %s; trying again every %g s", name, problem, seconds)
                failing = problem
            if stopping.wait(seconds):
                return

    threading.Thread(target=loop, name=f"signdigits-{name}", daemon=True).start()


def held_by_this_worker() -> dict[str, tuple[str, int] | None]:
    """Delivery tag -> (job id, batch) of every message this worker holds: reserved,
    running, or waiting for a retry's countdown."""
    from celery.worker import state

    for _ in range(5):
        try:  # the consumer changes these sets while this thread reads them
            requests = {*state.requests.values(), *state.reserved_requests,
                        *state.active_requests}
            break
        except RuntimeError:
            time.sleep(0.01)
    else:
        requests = set()
    held: dict[str, tuple[str, int] | None] = {}
    for request in requests:
        tag = getattr(getattr(request, "message", None), "delivery_tag", None)
        if tag is None:
            continue
        batch = None
        # ``type``, the task's own name: ``task_name`` is the shadow name Flower shows.
        if request.type == TASK_NAME and len(request.args) >= 2:
            batch = (str(request.args[0]), int(request.args[1]))
        held[str(tag)] = batch
    return held


def reconcile(app) -> None:
    """One pass: give back a dead worker's messages, then re-send the lost batches."""
    from signdigits.config.settings import get_settings
    from signdigits.db.recovery import stalled_batches

    for found in restore_dead_workers_messages(app):
        what = (f"batch {found.batch[1]} of job {found.batch[0]}" if found.batch
                else f"message {found.tag}")
        log.info("gave back %s: delivered %.0f s ago to a worker that no longer beats "
                 "its heartbeat", what, found.delivered_seconds_ago)
    settings = get_settings()
    sessions = _sessions(settings.database_url)

    def look() -> dict[tuple[str, int], StalledJob]:
        with sessions() as session:
            stalled = stalled_batches(session, stall_seconds=settings.stall_seconds)
        wanted = {(job.job_id, b): job for job in stalled for b in job.batches}
        held = held_batches(app, set(wanted)) if wanted else set()
        return {key: job for key, job in wanted.items() if key not in held}

    lost = look()
    if lost:
        # A message is in no key at all between a worker's BRPOP and kombu's write to
        # `unacked`, and a worker descheduled there hides it for as long (a retried batch
        # was re-sent so, and read four times instead of three). Lost is what two looks
        # a moment apart both miss.
        time.sleep(SECOND_LOOK_SECONDS)
        lost = {key: job for key, job in look().items() if key in lost}
    for job, batches in _by_job(lost):
        _resend(app, sessions, job, batches, stall_seconds=settings.stall_seconds)
    _webhooks(app, sessions, stall_seconds=settings.stall_seconds)
    count_pass(app)


def _webhooks(app, sessions, *, stall_seconds: int) -> None:
    """Ended jobs whose webhook nobody claimed are claimed; a delivery whose task was lost
    (its next attempt a stall period overdue) is sent again, at most once a period."""
    from datetime import timedelta

    from signdigits.broker.sending import send_webhook
    from signdigits.db.webhooks import (
        claim_webhook,
        ended_unclaimed,
        lost_deliveries,
        mark_resent,
    )

    with sessions() as session:
        unclaimed = ended_unclaimed(session)
        lost = lost_deliveries(session, grace=timedelta(seconds=stall_seconds))
    for job_id in unclaimed:
        with sessions.begin() as session:
            claimed = claim_webhook(session, job_id=job_id)
        if claimed:
            send_webhook(app, job_id)
            log.info("claimed the webhook of job %s, which ended without it sent", job_id)
    for job_id, attempts in lost:
        send_webhook(app, job_id, attempts=attempts)
        with sessions.begin() as session:
            mark_resent(session, job_id=job_id)
        log.info("re-sent the webhook task of job %s: its attempt %d was %d s overdue",
                 job_id, attempts + 1, stall_seconds)


def _by_job(lost: dict[tuple[str, int], StalledJob]) -> list[tuple[StalledJob, list[int]]]:
    jobs: dict[str, tuple[StalledJob, list[int]]] = {}
    for (job_id, batch), job in sorted(lost.items(), key=lambda item: item[0]):
        jobs.setdefault(job_id, (job, []))[1].append(batch)
    return list(jobs.values())


def _resend(app, sessions, job, lost: list[int], *, stall_seconds: int) -> None:
    from signdigits.db.recovery import mark_resent

    if job.inline:
        if _warned.get(job.job_id, 0) < time.monotonic() - stall_seconds:
            _warned[job.job_id] = time.monotonic()
            log.warning("job %s: %d batches lost by the broker carried their images in the "
                        "messages; `signdigits resume %s` where it was submitted sends them "
                        "again", job.job_id, len(lost), job.job_id)
        return
    with sender(app) as producer:
        for batch in lost:
            send_batch(app, producer, job.job_id, batch, {})
            # Marked batch by batch: a pass that fails part-way re-sends no batch twice.
            with sessions.begin() as session:
                mark_resent(session, job_id=job.job_id, batches=[batch])
            log.info("re-sent batch %s of job %s: pending images, no progress for %s s, "
                     "and no message for it in the broker", batch, job.job_id, stall_seconds)


_warned: dict[str, float] = {}
_factories: dict[str, object] = {}


def _sessions(url: str):
    """This process's session factory (one engine, made on the first pass)."""
    from signdigits.db.session import session_factory

    if url not in _factories:
        _factories[url] = session_factory(url)
    return _factories[url]
