"""Per-process resources of a worker: the loaded model, the database, the decode pool.

They are built after Celery forks its children (``worker_process_init``), because
TensorFlow and database connections do not survive a fork; building them at import time
would load TensorFlow in the parent and hand every child a broken copy.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from celery.signals import worker_process_init
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings, get_settings
from db.session import worker_session_factory
from worker.readiness import mark_model_loaded

if TYPE_CHECKING:  # importing it for real would pull TensorFlow into the parent
    from serving.classifier import Classifier

log = logging.getLogger(__name__)

# Images per model call inside a batch; smaller parts overlap decoding and inference more,
# larger ones use the model more efficiently (64 measured best with batches of 128). The
# model is warmed at this size, the largest it is ever given.
INFERENCE_PART = 64


@dataclass
class WorkerContext:
    settings: Settings
    sessions: sessionmaker[Session]
    classifier: Classifier
    decoders: ThreadPoolExecutor


@lru_cache(maxsize=1)
def get_context() -> WorkerContext:
    """Build this process's resources once: when a pool process starts, or on first use."""
    from serving.classifier import Classifier

    settings = get_settings()
    classifier = Classifier(settings.model_path, threads=settings.tf_threads)
    # At the largest size a task sends: else a job's first batch pays for sizing buffers.
    classifier.warm_up(INFERENCE_PART)
    log.info("model %s loaded from %s", classifier.version, classifier.info.path)
    context = WorkerContext(
        settings=settings,
        sessions=worker_session_factory(settings.database_url),
        classifier=classifier,
        decoders=ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="decode"),
    )
    open_connection(context.sessions)
    mark_model_loaded()
    return context


def open_connection(sessions: sessionmaker[Session]) -> None:
    """Put one connection in the pool, so the first claim does not pay for connecting.

    Connecting (and SQLAlchemy's first-connect checks) took 40-70 ms on PostgreSQL. A
    database that is down now is not this process's problem yet: tasks wait it out.
    """
    try:
        with sessions() as session:
            session.connection()
    except Exception as exc:  # noqa: BLE001 - any failure here is retried by the first task
        log.warning("database not reachable at worker start (%s); tasks will retry", exc)


@worker_process_init.connect
def _load_in_child(**_kwargs) -> None:
    get_context()
