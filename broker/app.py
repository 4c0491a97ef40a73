"""The Celery configuration both sides of the queue use: nothing heavy imported here.

The producer sends with an app made here and the worker (:mod:`worker.app`) consumes with
one; keeping one configuration means the serializer, queue and acknowledgement rules
cannot drift apart between them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from celery import Celery
from celery.app.amqp import AMQP
from kombu import Queue

from signdigits.broker.messages import PREDICT_TASK_NAME
from signdigits.config.settings import Settings, SettingsInvalid, get_settings

QUEUE = "signdigits"
# Single photos to classify while a person waits: a queue of their own, consumed by every
# worker beside QUEUE, so a photo waits for at most the batch a process is on, never for
# the whole backlog of queued batches.
PREDICT_QUEUE = "signdigits-predict"


def reply_deadlines(seconds: float = 5.0) -> dict:
    """Transport options that bound each broker reply a sender waits for, for the
    connections of senders only: a consumer's blocking reads must not time out."""
    return {"socket_timeout": seconds, "socket_connect_timeout": seconds}


def glance_deadlines(seconds: float = 5.0) -> dict:
    """:func:`reply_deadlines` for a read someone is waiting to see (a page, a scrape, a
    status line): one connection attempt, so a broker that is down is reported in
    milliseconds. Kombu otherwise tries a refused connection again for its connect
    timeout (2 s, then 4 s apart): /metrics took 6 s to say the broker was down. Only
    for readers: a worker's heartbeat and reconciler keep kombu's retries."""
    return {**reply_deadlines(seconds), "max_retries": 0}


def celery_config(settings: Settings) -> dict:
    return {
        # No default: a worker started without a URL must not find some other Redis.
        "broker_url": settings.broker_url,
        # Pickle would let anyone who can write to Redis run code in the workers.
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        # Results live in our SQL tables; Celery's result backend would only duplicate them.
        "task_ignore_result": True,
        "result_backend": None,
        # At-least-once: a task is acknowledged after it stored its rows, and a task whose
        # worker process died is redelivered rather than dropped.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Redis redelivers unacknowledged messages after this; must exceed the longest task.
        # Kombu looks for such messages only every interval x throttle seconds (100 s by
        # default); scale that to the timeout so a dead worker's batch comes back promptly.
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 4)),
            "unacked_restore_throttle": 1,
            # A worker SIGKILLed while it holds the restore lock leaves it held until it
            # expires: kombu's 300 s default held a dead worker's batch back for 5 minutes
            # (seen once in seven `docker kill` runs). A sweep restores at most 10
            # messages, in milliseconds, so seconds are plenty.
            "unacked_mutex_expire": max(5, min(30, settings.visibility_timeout // 4)),
        },
        "broker_connection_retry_on_startup": True,
        # Flower shows queued, running and finished tasks only with these events.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_default_queue": QUEUE,
        # A worker started without -Q consumes every queue listed here.
        "task_queues": [Queue(QUEUE), Queue(PREDICT_QUEUE)],
        "task_routes": {PREDICT_TASK_NAME: {"queue": PREDICT_QUEUE}},
        "task_track_started": True,
        # Loading TensorFlow in a fresh child takes seconds; Celery's default is 4.
        "worker_proc_alive_timeout": 120.0,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }


class DisplayNamedMessages(AMQP):
    """Task messages whose ``task-sent`` event names the task as its other events do.

    Celery puts the display name (``shadow``) in the message, so ``task-received`` and
    every later event carry it, but builds the ``task-sent`` event, published by the
    producer right after the message, with the registered name. An idle worker can
    receive a batch and report it before that event is out; Celery's event state (what
    Flower shows) then merges the late ``task-sent`` as an earlier state and takes its
    name, so the job's first batch appeared as ``signdigits.classify_batch``. Removing
    this brings that flake back.
    """

    def as_task_v2(self, *args, **kwargs):
        message = super().as_task_v2(*args, **kwargs)
        shadow = message.headers.get("shadow")
        if shadow and message.sent_event is not None:
            message.sent_event["name"] = shadow
        return message


def create_app(settings: Settings | None = None) -> Celery:
    """The app for ``settings``; without them, for the environment (``celery -A ...``).

    Under the ``celery`` command an unset or invalid setting ends the process with one line
    and exit code 2, as ``signdigits`` would: Celery would print a traceback, or with no
    broker URL retry a default server for ever. Imported anywhere else (tests, ``bench``,
    ``ready``), the app from the environment is only a registry of task names.
    """
    if settings is None:
        try:
            settings = get_settings()
        except SettingsInvalid as exc:
            _refuse_under_celery_command(str(exc))
            raise
        if not settings.broker_url:
            _refuse_under_celery_command(
                "SIGNDIGITS_BROKER_URL is not set: expected a Redis URL such as "
                "redis://:password@host:6379/0")
    celery = Celery("signdigits", amqp=DisplayNamedMessages)
    celery.conf.update(celery_config(settings))
    return celery


def configured_app(settings: Settings) -> Celery | None:
    """The app for ``settings``' broker, or None when none is configured: the embedded
    stack of a running ``run`` or ``serve`` is not reachable from another process, and
    its workers' reconciler does what a sender here would (claim and send a webhook)."""
    return create_app(settings) if settings.broker_url else None


def _refuse_under_celery_command(message: str) -> None:
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    if program.name == "celery" or program.parent.name == "celery":  # celery or -m celery
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)
