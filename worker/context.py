"""Per-process resources of a worker: the hand reader, the database, the decode pool.

They are built after Celery forks its children (``worker_process_init``), because
ONNX Runtime sessions, LiteRT interpreters, TensorFlow and database connections do not
survive a fork; building them at import time would load the models in the parent and
hand every child a broken copy. With the default runtime (``SIGNDIGITS_RUNTIME=onnx``) no
worker process imports TensorFlow at all.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from celery.signals import worker_init, worker_process_init
from sqlalchemy.orm import Session, sessionmaker

from signdigits.config.settings import Settings, get_settings
from signdigits.db.session import shown_url, worker_session_factory
from signdigits.worker.readiness import mark_model_loaded

if TYPE_CHECKING:  # importing them for real would load the runtimes in the parent
    from PIL import Image

    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands.finder import Hand, HandFinder, Settled
    from signdigits.serving.reader import HandReader
    from signdigits.worker.promoted import LoadedModels

log = logging.getLogger(__name__)

# Images per classifier call inside a batch: the classifier reads one part's hands while
# the decode threads find the next part's. The model is warmed at this size, the largest
# it is given (a photo with several hands gives it more rows, rarely).
INFERENCE_PART = 64


@dataclass
class WorkerContext:
    settings: Settings
    sessions: sessionmaker[Session]
    reader: HandReader  # the classifier (reader.classifier) and this process's hand models
    decoders: ThreadPoolExecutor
    finders: ThreadFinders
    models: LoadedModels  # the default model, and those loaded when promoted (worker.promoted)

    @property
    def classifier(self) -> Classifier:
        return self.reader.classifier


class ThreadFinders:
    """One :class:`HandFinder` per decode thread: a LiteRT interpreter is not thread-safe,
    and the hands are found in the decode threads so that decoding and finding the next
    part of a batch overlap the classifier on this one."""

    def __init__(self, folder: Path, *, max_hands: int) -> None:
        from signdigits.serving.hands.models import check_models

        self.folder = folder
        self.max_hands = max_hands
        self.model_hashes = check_models(folder)  # each thread's finder checks them again
        self._local = threading.local()

    def find(self, image: Image.Image, settled: Settled | None = None, *,
             grids: Sequence[int] | None = None) -> list[Hand]:
        """The hands in ``image``, found with the calling thread's own finder."""
        return self.get().find(image, settled, grids=grids)

    def place_closer(self, image: Image.Image, hand: Hand, factor: float) -> Hand | None:
        """``hand`` placed again on a closer decode, with the calling thread's finder."""
        return self.get().place_closer(image, hand, factor)

    def get(self) -> HandFinder:
        finder = getattr(self._local, "finder", None)
        if finder is None:
            from signdigits.serving.hands.finder import HandFinder

            finder = self._local.finder = HandFinder(self.folder, max_hands=self.max_hands)
        return finder


@lru_cache(maxsize=1)
def get_context() -> WorkerContext:
    """Build this process's resources once: when a pool process starts, or on first use."""
    from signdigits.serving.artifact import resolve_model_path
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands.models import models_dir
    from signdigits.serving.reader import HandReader
    from signdigits.worker.promoted import LoadedModels

    settings = get_settings()
    classifier = Classifier(settings.model_path, threads=settings.model_threads,
                            runtime=settings.runtime)
    # At the largest size a task sends: else a job's first batch pays for sizing buffers.
    classifier.warm_up(INFERENCE_PART)
    finders = ThreadFinders(models_dir(settings.hand_models_dir), max_hands=settings.max_hands)
    # Checks the hand models' hashes, and that the classifier was trained on their points.
    reader = HandReader(classifier, finders)
    log.info("model %s loaded from %s (%s); hand models from %s", classifier.version,
             classifier.served_path, classifier.runtime, finders.folder)
    context = WorkerContext(
        settings=settings,
        sessions=worker_session_factory(settings.database_url),
        reader=reader,
        decoders=ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="decode"),
        finders=finders,
        models=LoadedModels(classifier.version, resolve_model_path(settings.model_path),
                            warm_up=INFERENCE_PART),
    )
    warm_up_finders(context)
    open_connection(context.sessions)
    serve_promoted(context)
    mark_model_loaded()
    return context


def warm_up_finders(ctx: WorkerContext) -> None:
    """Build and run every decode thread's hand finder once, before the first batch.

    Each warm-up waits for the others at a barrier, so each runs in a thread of its own
    and the pool starts all of its threads now. Without it a job's first batches paid for
    loading the interpreters in each thread (and XNNPACK's first-run set-up) as decoding.
    """
    from PIL import Image

    threads = ctx.settings.decode_threads
    barrier = threading.Barrier(threads)
    blank = Image.new("RGB", (320, 240), (128, 128, 128))

    def warm() -> None:
        ctx.finders.get().find(blank)
        barrier.wait(timeout=120)

    for future in [ctx.decoders.submit(warm) for _ in range(threads)]:
        future.result()


def serve_promoted(ctx: WorkerContext) -> None:
    """Load the promoted model now, if one is, so the first batch does not pay for it (the
    batches check again each time: worker.promoted)."""
    from signdigits.db.registry import promoted_model
    from signdigits.worker.promoted import follow_promoted

    try:
        with ctx.sessions() as session:
            promoted = promoted_model(session)
    except Exception as exc:  # noqa: BLE001 - no database yet: the first batch asks again
        log.warning("cannot read the promoted model at start (%s)", exc)
        return
    follow_promoted(ctx, promoted)


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


@worker_init.connect
def _check_before_consuming(**_kwargs) -> None:
    """In the worker's main process, before its pool or consumer starts: exit if no model,
    or no hand models (missing, or not the pinned files).

    A worker that cannot load its models must not take batches: each would fail on every
    try and end as error rows (or, before this check, be acknowledged unprocessed). The
    artifact's metadata is read here without TensorFlow, which must not be loaded before
    the fork, and the hand models' files are hashed, not loaded; one line on stderr says
    why (for hand models, that ``signdigits fetch-hand-models`` puts them in place), and
    the exit status is 1.
    """
    from pydantic import ValidationError

    from signdigits.serving.artifact import ArtifactError
    from signdigits.serving.hands.models import HandModelsError
    from signdigits.serving.served import check_served_models

    try:
        settings = get_settings()
        served = check_served_models(settings)
    except ValidationError as exc:
        _exit_at_start("invalid configuration: " + "; ".join(e["msg"] for e in exc.errors()))
    except (ArtifactError, HandModelsError) as exc:
        _exit_at_start(f"cannot start the worker: {exc}")
    # The start line: which model, and which database this worker reads its jobs from.
    print(f"signdigits worker: model {served.info.version} from {served.served} "
          f"({settings.runtime}); hand models {served.hands}; database "
          f"{shown_url(settings.database_url)}", file=sys.stderr, flush=True)


def _exit_at_start(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr, flush=True)
    # os._exit: a SystemExit raised inside Celery's start-up would be reported as a crash.
    os._exit(1)


@worker_process_init.connect
def _load_in_child(**_kwargs) -> None:
    """Build the context in a new pool process; if that fails, stop the whole worker.

    A pool process without its model would take batches and fail each one; and exiting
    alone would make the pool fork a replacement that fails the same way, for ever. A
    cold shutdown (SIGQUIT) of the main process exits with status 1, and any message it
    had reserved goes back to the queue.
    """
    try:
        get_context()
    except Exception as exc:  # noqa: BLE001 - whatever it is, this process cannot work
        log.critical("cannot load the model in a worker process (%s: %s); stopping the worker",
                     exc.__class__.__name__, exc)
        os.kill(os.getppid(), signal.SIGQUIT)
        os._exit(1)
