"""One batch, start to finish: claim its pending rows, decode and find the hands,
classify them, store.

Read :func:`process_batch` top to bottom for the whole lifecycle of a task.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy.orm import Session, sessionmaker

from signdigits.db.batches import count_attempt, pending_images
from signdigits.db.models import ImageStatus, Job, utcnow
from signdigits.db.registry import Promoted, promoted_model
from signdigits.db.results import store_results
from signdigits.files.objects import s3_client
from signdigits.files.paths import is_object_url
from signdigits.files.reading import ImageError

# Numpy and Pillow only at import (the parent imports this module before forking): the
# runtimes of the classifier and the hand finder load in each child (worker.context).
from signdigits.serving.hands.finder import Hand
from signdigits.serving.photo import Photo, read_photo
from signdigits.serving.reader import first_look, look_again
from signdigits.worker.columns import reading_columns
from signdigits.worker.context import INFERENCE_PART, WorkerContext
from signdigits.worker.promoted import follow_promoted
from signdigits.worker.retries import Action, Failure, decide
from signdigits.worker.sources import job_reader
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
    # Where the batch's time went: wall seconds (claim, decode_and_model, store) and CPU
    # seconds per stage (cpu_decode, cpu_palms, cpu_landmarks, cpu_classify, which
    # `bench` reads by these names): the task's return value, so Flower's task page and
    # the worker's INFO line "succeeded in" show it.
    seconds: dict[str, float] = field(default_factory=dict)


class PendingImage(NamedTuple):
    id: int
    path: str
    etag: str | None = None  # an object's, as listed (s3:// jobs)


@dataclass(frozen=True)
class Looked:
    """One image after its decode thread: the hands found on it, or why it is unreadable."""

    hands: list[Hand] = field(default_factory=list)  # surest first, in decoded pixels
    scale: float = 1.0  # decoded pixels per photo pixel: hand_record's
    error: str | None = None
    cpu: tuple[float, float, float] = (0.0, 0.0, 0.0)  # decode, palms, landmarks seconds


@dataclass
class StageCpu:
    """A batch's CPU seconds per stage, each counted in the thread that did the work."""

    decode: float = 0.0
    palms: float = 0.0
    landmarks: float = 0.0
    classify: float = 0.0

    def add(self, looked: Looked) -> None:
        self.decode += looked.cpu[0]
        self.palms += looked.cpu[1]
        self.landmarks += looked.cpu[2]

    def seconds(self) -> dict[str, float]:
        return {f"cpu_{stage}": round(value, 6)
                for stage, value in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class ClaimedBatch:
    job: Job
    batch: int
    images: list[PendingImage]
    attempt: int
    promoted: Promoted | None = None  # the model to serve this batch with (None: default)


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
    # Between batches, never inside one: a batch is read by one model, which its rows name.
    follow_promoted(ctx, claimed.promoted)
    rows: list[dict] = []
    cpu = StageCpu()
    for part in find_hands_in_parts(ctx, claimed, inline=inline, cpu=cpu):
        rows += classify_hands(ctx, claimed, part, worker=worker, cpu=cpu)
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
                        seconds={**{phase: round(value, 4) for phase, value in seconds.items()},
                                 **cpu.seconds()})


def claim_batch(sessions: sessionmaker[Session], *, job_id: str, batch: int,
                delivery: Delivery) -> ClaimedBatch | None:
    """Count this delivery's attempt on the batch (once) and load its pending images; None
    if none are left.

    Raises :class:`UnknownJob` if this worker's database has no such job, and
    StorageNotConfigured if the job is in object storage and this worker has no way to
    read any object (no credentials, say): neither counts a try of the batch.
    """
    with sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise UnknownJob(job_id)
        if job.cancelled_at is not None:
            return None
        if is_object_url(job.root):
            s3_client()
        images = [
            PendingImage(*row) for row in pending_images(session, job_id=job_id, batch=batch)
        ]
        if not images:
            return None  # delivered again after its rows were stored: nothing to count
        attempt = delivery.attempt or count_attempt(session, job_id=job_id, batch=batch)
        promoted = promoted_model(session)
        session.expunge(job)
    delivery.attempt = attempt  # committed: a start over in place counts no more
    return ClaimedBatch(job, batch, images, attempt, promoted)


def find_hands_in_parts(
    ctx: WorkerContext, claimed: ClaimedBatch, *, inline: dict | None, cpu: StageCpu
) -> Iterator[dict[int, Looked]]:
    """Per part of the batch: image id -> the hands found on it, or why it is unreadable.

    Every image is queued at once, and each decode thread both decodes and finds the
    hands (with a hand finder of its own): finding is most of an image's cost, so it
    runs where decoding ran, and while the classifier reads one part the threads are
    already on the next.
    """
    settings = ctx.settings
    read_file = job_reader(claimed.job.root, settings)  # its folder, or its s3:// prefix

    # Bytes in a message are used only for jobs submitted that way: anyone who can write
    # to the broker could otherwise supply the pixels stored for any job's images.
    inline = inline if claimed.job.inline else None

    def read(image: PendingImage) -> bytes:
        if inline is None:
            return read_file(image.path, image.etag)
        entry = inline.get(str(image.id)) or {"error": "image missing from the message"}
        if "error" in entry:
            raise ImageError(entry["error"])
        data = base64.b64decode(entry["data"])
        if len(data) > settings.max_file_bytes:
            raise ImageError(f"file is {len(data):,} bytes, over the cap")
        return data

    def look(image: PendingImage) -> Looked:
        started = time.thread_time()
        try:
            data = read(image)
            photo = read_photo(data, max_pixels=settings.max_image_pixels)
        except ImageError as exc:
            return Looked(error=str(exc), cpu=(time.thread_time() - started, 0.0, 0.0))
        decoded = time.thread_time()
        try:
            photo, hands, palms, landmarks = find_hands(ctx, data, photo,
                                                        max_pixels=settings.max_image_pixels)
        except Exception as exc:  # noqa: BLE001 - one odd photo must not fail its batch
            log.warning("image %s: the hand finder failed", image.id, exc_info=True)
            detail = (str(exc).strip().splitlines() or [""])[0][:200]
            return Looked(error=f"cannot look for hands: {exc.__class__.__name__}: {detail}",
                          cpu=(decoded - started, 0.0, 0.0))
        spent = time.thread_time() - decoded
        # The finder times its stages on the process's clock, which also counts the other
        # threads' work meanwhile: its split is kept, on this thread's own seconds.
        share = palms / (palms + landmarks) if palms + landmarks > 0 else 1.0
        return Looked(hands, photo.scale,
                      cpu=(decoded - started, spent * share, spent * (1 - share)))

    futures = [(image.id, ctx.decoders.submit(look, image)) for image in claimed.images]
    try:
        for start in range(0, len(futures), INFERENCE_PART):
            part = {image_id: future.result()
                    for image_id, future in futures[start : start + INFERENCE_PART]}
            for looked in part.values():
                cpu.add(looked)
            yield part
    finally:
        for _, future in futures:
            future.cancel()  # the batch failed part-way: decode no further


def find_hands(ctx: WorkerContext, data: bytes, photo: Photo, *, max_pixels: int
               ) -> tuple[Photo, list[Hand], float, float]:
    """This decode thread's finder on one photo (``data`` decoded), again on a closer
    decode when it calls for one (serving.reader.look_again): the photo the hands are in,
    the hands, and the finder's palm and landmark seconds for them."""
    finder = ctx.finders.get()
    palms, landmarks = finder.seconds.palms, finder.seconds.landmarks
    # The reader finds (placed once when settled) and places closer on this thread's finder.
    reader = ctx.reader
    photo, hands = look_again(reader, data, photo, first_look(reader, photo),
                              max_pixels=max_pixels)
    return photo, hands, finder.seconds.palms - palms, finder.seconds.landmarks - landmarks


def classify_hands(
    ctx: WorkerContext, claimed: ClaimedBatch, part: dict[int, Looked], *, worker: str,
    cpu: StageCpu,
) -> list[dict]:
    """One classifier call for every hand of this part; one result row per image."""
    found = {image_id: looked for image_id, looked in part.items() if looked.error is None}
    started = time.thread_time()  # ONNX Runtime runs the call in this thread (1 thread)
    readings = dict(zip(found, ctx.reader.classify([looked.hands for looked in found.values()]),
                        strict=True))
    cpu.classify += time.thread_time() - started
    threshold = flag_threshold(claimed.job, ctx.classifier.info)
    now = utcnow()
    rows = []
    for image in claimed.images:
        looked = part.get(image.id)
        if looked is None:
            continue  # another part's
        row: dict[str, Any] = {
            "id": image.id, "worker": worker, "model_version": ctx.classifier.version,
            "finished_at": now, "attempts": claimed.attempt,
            "status": ImageStatus.DONE, "digit": None, "class_index": None,
            "confidence": None, "below_threshold": None, "probabilities": None, "error": None,
            "hand": None, "reading": None, "digits": None, "hand_count": None,
        }
        if looked.error is None:
            row.update(reading_columns(readings[image.id], scale=looked.scale,
                                       threshold=threshold))
        else:
            row.update(status=ImageStatus.ERROR, error=looked.error)
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
