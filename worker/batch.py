"""One batch, start to finish: claim its pending rows, decode, classify, store.

Read :func:`process_batch` top to bottom for the whole lifecycle of a task.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from signdigits.db.batches import count_attempt, pending_images
from signdigits.db.models import ImageStatus, Job, utcnow
from signdigits.db.results import store_results
from signdigits.files.reading import ImageError, JobFolder
from signdigits.serving.model_input import IMAGE_SIZE
from signdigits.serving.preprocess import preprocess_image
from signdigits.worker.context import INFERENCE_PART, WorkerContext
from signdigits.worker.retries import Action, Failure, decide
from signdigits.worker.thresholds import flag_threshold

log = logging.getLogger(__name__)


class UnknownJob(LookupError):
    """This worker's database has no such job: it is not the producer's database.

    Never acknowledged as done: the task puts the message back for a worker that knows
    the job (:mod:`worker.tasks`).
    """


@dataclass(frozen=True)
class BatchOutcome:
    job_id: str
    batch: int
    classified: int = 0
    errors: int = 0
    skipped: bool = False
    # Where the batch's time went (claim, decode_and_model, store): the task's return
    # value, so Flower's task page and the worker's INFO line "succeeded in" show it.
    seconds: dict[str, float] = field(default_factory=dict)


class PendingImage(NamedTuple):
    id: int
    path: str


@dataclass(frozen=True)
class ClaimedBatch:
    job: Job
    batch: int
    images: list[PendingImage]
    attempt: int


@dataclass
class Delivery:
    """One delivery of a batch's message: its attempt is counted once, however often a
    database outage makes it start over in place. Counted at each start, a store that
    failed for 20 s (a full disk) gave the batch's images up as "no try finished"."""

    attempt: int | None = None


def process_batch(
    ctx: WorkerContext, *, job_id: str, batch: int, inline: dict | None, worker: str,
    delivery: Delivery | None = None,
) -> BatchOutcome:
    started = time.perf_counter()
    claimed = claim_batch(ctx.sessions, job_id=job_id, batch=batch,
                          delivery=delivery or Delivery())
    claimed_at = time.perf_counter()
    if claimed is None:
        return BatchOutcome(job_id, batch, skipped=True)
    # Every earlier try ended without a result (it raised and was retried, or its process
    # died): the same rule as after a failure decides whether this one may run.
    tries = claimed.attempt - 1
    decision = decide(tries=tries, failure=Failure.UNFINISHED, settings=ctx.settings,
                      detail="no try finished (the worker process died, or lost the "
                      "database, every time)")
    if decision.action is Action.GIVE_UP:
        give_up_batch(ctx, dataclasses.replace(claimed, attempt=tries), worker=worker,
                      reason=decision.reason)
        log.error("batch %s of job %s: %s", batch, job_id, decision.reason)
        return BatchOutcome(job_id, batch, errors=len(claimed.images))
    rows: list[dict] = []
    for pixels, errors in decode_in_parts(ctx, claimed, inline=inline):
        rows += classify_images(ctx, claimed, pixels, errors, worker=worker)
    classified_at = time.perf_counter()
    with ctx.sessions.begin() as session:
        store_results(session, job_id=job_id, batch=batch, rows=rows)
    seconds = {
        "claim": claimed_at - started,
        "decode_and_model": classified_at - claimed_at,
        "store": time.perf_counter() - classified_at,
    }
    failed = sum(row["status"] == ImageStatus.ERROR for row in rows)
    return BatchOutcome(job_id, batch, classified=len(rows) - failed, errors=failed,
                        seconds={phase: round(value, 4) for phase, value in seconds.items()})


def claim_batch(sessions: sessionmaker[Session], *, job_id: str, batch: int,
                delivery: Delivery) -> ClaimedBatch | None:
    """Count this delivery's attempt on the batch (once) and load its pending images; None
    if none are left.

    Raises :class:`UnknownJob` if this worker's database has no such job.
    """
    with sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise UnknownJob(job_id)
        if job.cancelled_at is not None:
            return None
        images = [
            PendingImage(*row) for row in pending_images(session, job_id=job_id, batch=batch)
        ]
        if not images:
            return None  # delivered again after its rows were stored: nothing to count
        attempt = delivery.attempt or count_attempt(session, job_id=job_id, batch=batch)
        session.expunge(job)
    delivery.attempt = attempt  # committed: a start over in place counts no more
    return ClaimedBatch(job, batch, images, attempt)


def decode_in_parts(
    ctx: WorkerContext, claimed: ClaimedBatch, *, inline: dict | None
) -> Iterator[tuple[dict[int, np.ndarray], dict[int, str]]]:
    """Per part of the batch: image id -> pixels, and image id -> error for the unreadable.

    Every decode is queued at once, so while the model runs on one part the decode
    thread is already on the next: that overlap is most of the gap between one busy
    process and two. Removing it costs about a fifth of the throughput (``bench``).
    """
    settings = ctx.settings
    folder = JobFolder(claimed.job.root, allowed_roots=settings.allowed_roots)

    # Bytes in a message are used only for jobs submitted that way: anyone who can write
    # to the broker could otherwise supply the pixels stored for any job's images.
    inline = inline if claimed.job.inline else None

    def decode(image: PendingImage) -> np.ndarray:
        if inline is not None:
            entry = inline.get(str(image.id)) or {"error": "image missing from the message"}
            if "error" in entry:
                raise ImageError(entry["error"])
            data = base64.b64decode(entry["data"])
            if len(data) > settings.max_file_bytes:
                raise ImageError(f"file is {len(data):,} bytes, over the cap")
        else:
            data = folder.read(image.path, max_bytes=settings.max_file_bytes)
        return preprocess_image(data, max_pixels=settings.max_image_pixels)

    futures = [(image.id, ctx.decoders.submit(decode, image)) for image in claimed.images]
    try:
        for start in range(0, len(futures), INFERENCE_PART):
            pixels: dict[int, np.ndarray] = {}
            errors: dict[int, str] = {}
            for image_id, future in futures[start : start + INFERENCE_PART]:
                try:
                    pixels[image_id] = future.result()
                except ImageError as exc:
                    errors[image_id] = str(exc)
            yield pixels, errors
    finally:
        for _, future in futures:
            future.cancel()  # the batch failed part-way: decode no further


def classify_images(
    ctx: WorkerContext,
    claimed: ClaimedBatch,
    pixels: dict[int, np.ndarray],
    errors: dict[int, str],
    *,
    worker: str,
) -> list[dict]:
    """Run the model once on these images and build one result row for each."""
    ids = list(pixels)
    stack = np.stack([pixels[i] for i in ids]) if ids else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE))
    predictions = dict(zip(ids, ctx.classifier.classify(stack), strict=True))
    version = ctx.classifier.version
    threshold = flag_threshold(claimed.job, ctx.classifier.info)
    now = utcnow()
    rows = []
    for image in claimed.images:
        if image.id not in pixels and image.id not in errors:
            continue  # another part's
        row = {
            "id": image.id, "worker": worker, "model_version": version, "finished_at": now,
            "attempts": claimed.attempt,
            "status": ImageStatus.DONE, "digit": None, "class_index": None,
            "confidence": None, "below_threshold": None, "probabilities": None, "error": None,
        }
        if image.id in predictions:
            p = predictions[image.id]
            row.update(
                digit=p.digit, class_index=p.class_index, confidence=p.confidence,
                below_threshold=p.confidence < threshold, probabilities=p.probabilities,
            )
        else:
            row.update(status=ImageStatus.ERROR, error=errors[image.id])
        rows.append(row)
    return rows


def give_up_batch(ctx: WorkerContext, claimed: ClaimedBatch, *, worker: str, reason: str) -> None:
    """Store an error row for every pending image of a batch that keeps failing."""
    now = utcnow()
    rows = [
        {
            "id": image.id, "worker": worker, "finished_at": now,
            "status": ImageStatus.ERROR, "error": reason, "attempts": claimed.attempt,
        }
        for image in claimed.images
    ]
    with ctx.sessions.begin() as session:
        store_results(session, job_id=claimed.job.id, batch=claimed.batch, rows=rows)
